// The sign-in page: paste a key; or, on a server bound to loopback and opened on this machine,
// sign in as operator with the admin key, which makes a personal key for the playground.
// How to get a key comes from GET /ui/config, in the words of the start-up banner.

import { ApiError, listModels, session } from './api.js';
import { admin, adminApi } from './admin.js';
import { $, h, say } from './dom.js';

const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
let config = {};
let signedIn = () => {};

export function initSignIn({ onSignedIn }) {
  signedIn = onSignedIn;
  $('signin-form').addEventListener('submit', pasteSignIn);
  $('admin-form').addEventListener('submit', operatorSignIn);
}

/** The page's own address is this machine: the admin key would not leave it. */
function pageOnLoopback() {
  const host = window.location.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function defaultKeyName() {
  const now = new Date();
  const two = (n) => String(n).padStart(2, '0');
  return `playground-${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-${two(now.getHours())}${two(now.getMinutes())}`;
}

function adminKeyPlace() {
  return config.admin_key === 'HEARTH_ADMIN_KEY'
    ? ["the server's ", h('code', { text: 'HEARTH_ADMIN_KEY' }), ' environment variable']
    : [h('code', { text: config.admin_key ?? 'DATA_DIR/admin.key' }), ' on the server (mode 600: only its owner can read it)'];
}

/** Fill in what the server said: the key command, the admin key's place, operator sign-in or why not. */
export function configureSignIn(serverConfig) {
  config = serverConfig;
  $('key-command').textContent = config.key_command ?? '';
  $('make-key-hint').hidden = !config.make_key;
  $('admin-key-where').replaceChildren(
    'The admin key is kept in ', ...adminKeyPlace(), '. It creates and revokes keys (the ',
    h('code', { text: '/admin' }), ' API); chatting needs an ordinary key.',
  );
  const offered = Boolean(config.loopback) && pageOnLoopback();
  $('admin-form').hidden = !offered;
  const remote = $('admin-remote');
  remote.hidden = offered;
  remote.textContent = config.loopback
    ? 'Signing in with the admin key is offered only on a page opened on the server\'s own machine (127.0.0.1 or localhost). '
      + 'This page came through another address, so the admin key would cross the network, where anyone who sees it '
      + 'could make and revoke every key. Make yourself a key with the command above and paste it instead.'
    : 'Signing in with the admin key is offered only when Hearth listens on loopback (127.0.0.1). This server is '
      + 'reachable over the network, and the admin key must not travel over it: anyone who sees it could make and '
      + 'revoke every key. Make yourself a key on the server with the command above and paste it instead.';
  if (offered && !$('admin-key-name').value) $('admin-key-name').value = defaultKeyName();
}

export function showSignInMessages({ error = '', info = '' } = {}) {
  say($('signin-error'), error);
  say($('signin-info'), info);
  say($('admin-error'), '');
  say($('admin-info'), '');
  $('api-key').setAttribute('aria-invalid', String(Boolean(error)));
  $('api-key').focus();
}

async function pasteSignIn(event) {
  event.preventDefault();
  const input = $('api-key');
  const key = input.value.trim();
  if (!key) {
    showSignInMessages({ error: 'Enter your API key, or make one with the command below.' });
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
    say($('signin-info'), '');
    signedIn(models, null);
  } catch (err) {
    let message = err instanceof ApiError ? err.message : String(err);
    if (err instanceof ApiError && err.status === 401) {
      message += key.startsWith('hk-admin-')
        ? ' That looks like the admin key: it manages keys but cannot chat. Make an ordinary key (see below).'
        : ' Check the key: it may be mistyped, revoked or expired. No key yet? See below.';
    }
    showSignInMessages({ error: message });
  } finally {
    submit.disabled = false;
  }
}

function operatorError(message) {
  say($('admin-info'), '');
  say($('admin-error'), message);
}

async function operatorSignIn(event) {
  event.preventDefault();
  const secret = $('admin-key').value.trim();
  const name = $('admin-key-name').value.trim();
  if (!secret) return operatorError('Enter the admin key.');
  if (!KEY_NAME.test(name)) return operatorError('The key name must be 1 to 64 letters, digits, ".", "_" or "-".');
  const submit = $('admin-submit');
  submit.disabled = true;
  say($('admin-error'), '');
  say($('admin-info'), `Making your personal key “${name}”…`);
  let created;
  try {
    const response = await adminApi('/admin/keys', { method: 'POST', json: { name }, adminKey: secret });
    created = await response.json();
  } catch (err) {
    submit.disabled = false;
    if (err instanceof ApiError && err.status === 401) {
      const place = config.admin_key === 'HEARTH_ADMIN_KEY' ? 'HEARTH_ADMIN_KEY' : config.admin_key;
      return operatorError(`${err.message} Copy it again from ${place} on the server.`);
    }
    if (err instanceof ApiError && err.code === 'key_name_taken') {
      return operatorError(`A key named “${name}” exists already: choose another name for your personal key.`);
    }
    return operatorError(err instanceof ApiError ? err.message : String(err));
  }
  // Both keys live in this tab's session storage: a reload stays signed in as operator.
  session.set(created.secret);
  admin.set(secret);
  $('admin-key').value = '';
  $('admin-key-name').value = '';
  try {
    const models = await listModels();
    say($('admin-info'), '');
    signedIn(models, { name: created.name, prefix: created.prefix });
  } catch (err) {
    if (err?.status !== 401) operatorError(`Your key “${created.name}” was made, but: ${err instanceof ApiError ? err.message : err}`);
  } finally {
    submit.disabled = false;
  }
}
