// Hearth web UI entry point: what the server says at /ui/config, sign-in, the tabs, and the
// wiring of the panels. Plain ES modules, no build step; everything talks to the public API.

import { admin } from './admin.js';
import { ApiError, getConfig, listModels, onUnauthorized, session } from './api.js';
import { initChat, resetChat, setChatModels, stop as stopChat } from './chat.js';
import { initClassify, resetClassify, setClassifyModels } from './classify.js';
import { initDashboard, loadUsage, resetDashboard } from './dashboard.js';
import { $, wireCopyButtons } from './dom.js';
import { initKeys, loadKeys, resetKeys, setKeyModels } from './keys.js';
import { initModels, loadModels, resetModels } from './models.js';
import { initOperator, loadOperator, resetOperator } from './operator.js';
import { configureSignIn, initSignIn, showSignInMessages } from './signin.js';
import { initSpeech, resetSpeech, setSpeechModels } from './speech.js';

const ALL_TABS = ['chat', 'classify', 'speech', 'usage', 'keys'];
const state = { signedIn: false, authOff: false, tab: 'chat', config: {}, keyName: null };

/** The tabs this session may see: Operator (tab-keys) only while signed in with the admin key. */
const tabs = () => ALL_TABS.filter((tab) => tab !== 'keys' || admin.active);

function selectTab(name, { focus = false } = {}) {
  const visible = tabs();
  if (!visible.includes(name)) name = 'chat';
  state.tab = name;
  for (const tab of ALL_TABS) {
    const button = $(`tab-${tab}`);
    const selected = tab === name;
    button.hidden = !visible.includes(tab);
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  if (window.location.hash !== `#${name}`) window.history.replaceState(null, '', `#${name}`);
  if (name === 'usage') loadUsage();
  if (name === 'keys') {
    loadOperator();
    loadKeys();
    loadModels();
  }
}

function initTabs() {
  for (const tab of ALL_TABS) $(`tab-${tab}`).addEventListener('click', () => selectTab(tab));
  $('tabs').addEventListener('keydown', (event) => {
    const visible = tabs();
    const i = visible.indexOf(state.tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: visible.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    selectTab(visible[(next + visible.length) % visible.length], { focus: true });
  });
  window.addEventListener('hashchange', () => {
    const name = window.location.hash.slice(1);
    if (state.signedIn && tabs().includes(name) && name !== state.tab) selectTab(name);
  });
}

function showOnly(view) {
  $('boot-status').hidden = view !== 'boot';
  $('boot-error').hidden = view !== 'fatal';
  $('signin').hidden = view !== 'signin';
  $('tabs').hidden = view !== 'app';
  $('account').hidden = view !== 'app';
  for (const tab of ALL_TABS) $(`panel-${tab}`).hidden = view !== 'app' || tab !== state.tab;
}

function showSignIn(messages = {}) {
  state.signedIn = false;
  showOnly('signin');
  showSignInMessages(messages);
}

function setAccountLabel(key) {
  const label = $('account-label');
  if (key?.name) state.keyName = key.name;
  if (state.authOff) {
    label.textContent = 'Auth off: no key needed';
    label.title = 'This server runs without API keys (--no-auth).';
  } else {
    const who = state.keyName ? `Signed in as ${state.keyName}` : 'Signed in';
    label.textContent = admin.active ? `${who} (operator)` : who;
    label.title = admin.active ? 'The admin key is kept in this tab\'s session storage, for managing the server.' : '';
  }
  $('sign-out').hidden = state.authOff;
}

function enterApp(models, key = null) {
  state.signedIn = true;
  state.keyName = key?.name ?? null;
  setChatModels(models, state.config.default_chat_model);
  setClassifyModels(models);
  setSpeechModels(models);
  setKeyModels(models);
  setAccountLabel(key);
  $('auth-off-note').hidden = !state.authOff;
  showOnly('app');
  const fromHash = window.location.hash.slice(1);
  selectTab(tabs().includes(fromHash) ? fromHash : state.tab);
  // Signed in on the chat: the next thing to do is to type (keyboard users start there).
  if (state.tab === 'chat') $('chat-input').focus();
  if (!state.authOff && state.tab !== 'usage') loadUsage({ quiet: true }); // for the key's name
}

function signOut(messages = {}) {
  stopChat();
  session.clear();
  admin.clear();
  resetChat();
  $('chat-settings').reset(); // the next person starts from the defaults
  $('chat-input').value = '';
  resetClassify();
  resetSpeech();
  resetDashboard();
  resetKeys();
  resetModels();
  resetOperator();
  state.keyName = null;
  showSignIn(messages);
}

async function boot() {
  showOnly('boot');
  try {
    state.config = await getConfig();
    configureSignIn(state.config);
    state.authOff = !state.config.auth;
    if (state.authOff) {
      session.clear(); // a key from before a restart with --no-auth is not needed
      enterApp(await listModels({ key: null }));
    } else if (session.key) {
      enterApp(await listModels());
    } else {
      showSignIn();
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // onUnauthorized signed out already
    $('boot-error-text').textContent =
      err instanceof ApiError ? err.message : `The page could not start: ${err}`;
    showOnly('fatal');
  }
}

function init() {
  initTabs();
  initChat();
  initClassify();
  initSpeech();
  initDashboard({ onKeyName: (key) => setAccountLabel(key) });
  initSignIn({ onSignedIn: enterApp });
  initModels();
  initOperator();
  initKeys({
    ownKeyRevoked: (key) =>
      signOut({ info: `You revoked “${key.name}”, the key this tab used, and are signed out.` }),
  });
  wireCopyButtons();
  admin.onChange(() => {
    if (state.signedIn) setAccountLabel(null); // the Keys panel says why the admin key was refused
  });
  $('sign-out').addEventListener('click', () =>
    signOut({ info: 'You are signed out. The key was removed from this tab.' }),
  );
  $('boot-retry').addEventListener('click', boot);
  onUnauthorized((error) =>
    signOut({ error: `${error.message} It may have been revoked, rotated or expired. Sign in again.` }),
  );
  boot();
}

init();
