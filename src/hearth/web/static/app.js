// Hearth web UI entry point: sign-in with an API key, the tabs, and wiring of the three panels.
// Plain ES modules, no build step; everything talks to the public /v1 API like any client.

import { ApiError, listModels, onUnauthorized, session } from './api.js';
import { initChat, resetChat, setChatModels, stop as stopChat } from './chat.js';
import { initClassify, resetClassify, setClassifyModels } from './classify.js';
import { initDashboard, loadUsage, resetDashboard } from './dashboard.js';
import { $, say } from './dom.js';

const TABS = ['chat', 'classify', 'usage'];
const state = { signedIn: false, authOff: false, tab: 'chat' };

function selectTab(name, { focus = false } = {}) {
  if (!TABS.includes(name)) name = 'chat';
  state.tab = name;
  for (const tab of TABS) {
    const button = $(`tab-${tab}`);
    const selected = tab === name;
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  if (window.location.hash !== `#${name}`) window.history.replaceState(null, '', `#${name}`);
  if (name === 'usage') loadUsage();
}

function initTabs() {
  for (const tab of TABS) $(`tab-${tab}`).addEventListener('click', () => selectTab(tab));
  $('tabs').addEventListener('keydown', (event) => {
    const i = TABS.indexOf(state.tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    selectTab(TABS[(next + TABS.length) % TABS.length], { focus: true });
  });
  window.addEventListener('hashchange', () => {
    const name = window.location.hash.slice(1);
    if (state.signedIn && TABS.includes(name) && name !== state.tab) selectTab(name);
  });
}

function showOnly(view) {
  $('boot-status').hidden = view !== 'boot';
  $('boot-error').hidden = view !== 'fatal';
  $('signin').hidden = view !== 'signin';
  $('tabs').hidden = view !== 'app';
  $('account').hidden = view !== 'app';
  for (const tab of TABS) $(`panel-${tab}`).hidden = view !== 'app' || tab !== state.tab;
}

function showSignIn({ error = '', info = '' } = {}) {
  state.signedIn = false;
  showOnly('signin');
  say($('signin-error'), error);
  say($('signin-info'), info);
  $('api-key').setAttribute('aria-invalid', String(Boolean(error)));
  $('api-key').focus();
}

function setAccountLabel(key) {
  const label = $('account-label');
  if (state.authOff) {
    label.textContent = 'No key needed';
    label.title = 'This server runs without API keys (--no-auth).';
  } else if (key && key.name) {
    label.textContent = `Signed in as ${key.name}`;
    label.title = key.prefix ? `Key ${key.prefix}…` : '';
  } else {
    label.textContent = 'Signed in';
  }
  $('sign-out').hidden = state.authOff;
}

function enterApp(models) {
  state.signedIn = true;
  setChatModels(models);
  setClassifyModels(models);
  setAccountLabel(null);
  showOnly('app');
  const fromHash = window.location.hash.slice(1);
  selectTab(TABS.includes(fromHash) ? fromHash : state.tab);
  if (!state.authOff && state.tab !== 'usage') loadUsage({ quiet: true }); // for the key's name
}

function signOut({ error = '', info = '' } = {}) {
  stopChat();
  session.clear();
  resetChat();
  $('chat-settings').reset(); // the next person starts from the defaults
  $('chat-input').value = '';
  resetClassify();
  resetDashboard();
  showSignIn({ error, info });
}

async function boot() {
  showOnly('boot');
  const key = session.key;
  try {
    const models = await listModels({ key });
    state.authOff = !key; // the server answered without a key: auth is off
    enterApp(models);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      if (!key) showSignIn(); // a stored key that failed was handled by onUnauthorized
      return;
    }
    $('boot-error-text').textContent =
      err instanceof ApiError ? err.message : `The page could not start: ${err}`;
    showOnly('fatal');
  }
}

async function signIn(event) {
  event.preventDefault();
  const input = $('api-key');
  const key = input.value.trim();
  if (!key) {
    showSignIn({ error: 'Enter your API key.' });
    return;
  }
  const submit = $('signin-submit');
  submit.disabled = true;
  say($('signin-error'), '');
  say($('signin-info'), 'Checking the key…');
  try {
    const models = await listModels({ key });
    session.set(key);
    input.value = '';
    state.authOff = false;
    say($('signin-info'), '');
    enterApp(models);
  } catch (err) {
    const message = err instanceof ApiError ? err.message : String(err);
    showSignIn({
      error: err instanceof ApiError && err.status === 401 ? `${message} Check the key and try again.` : message,
    });
  } finally {
    submit.disabled = false;
  }
}

function init() {
  initTabs();
  initChat();
  initClassify();
  initDashboard({ onKeyName: (key) => setAccountLabel(key) });
  $('signin-form').addEventListener('submit', signIn);
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
