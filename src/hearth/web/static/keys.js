// Key management for operators (signed in with the admin key): list, create with limits, revoke.
// A new key's secret is shown once, with a copy button, and forgotten when dismissed.

import { ApiError, session } from './api.js';
import { adminApi } from './admin.js';
import { $, h, numberFormat, say } from './dom.js';

const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const LIMITS = [
  ['rpm', 'keys-rpm', 'Requests per minute'],
  ['tpm', 'keys-tpm', 'Tokens per minute'],
  ['max_concurrent', 'keys-max-concurrent', 'Requests at once'],
  ['monthly_tokens', 'keys-monthly-tokens', 'Tokens per month'],
  ['batch_queued_tokens', 'keys-batch-queued-tokens', 'Batch tokens queued'],
  ['expires_days', 'keys-expires-days', 'Expires after (days)'],
];
const els = {};
let onOwnKeyRevoked = () => {};

export function initKeys({ ownKeyRevoked }) {
  onOwnKeyRevoked = ownKeyRevoked;
  for (const id of ['keys-status', 'keys-refresh', 'keys-error', 'keys-table', 'keys-secret', 'keys-secret-title',
    'keys-secret-value', 'keys-secret-copied', 'keys-secret-done', 'keys-form', 'keys-name', 'keys-models',
    'keys-form-error', 'keys-create', 'keys-show-revoked']) {
    els[id.replace('keys-', '')] = $(id);
  }
  els.refresh.addEventListener('click', () => loadKeys());
  els['show-revoked'].addEventListener('change', showRevoked);
  els.form.addEventListener('submit', createKey);
  els['secret-done'].addEventListener('click', hideSecret);
}

/** The model checkboxes of the create form: none ticked means every model. */
export function setKeyModels(models) {
  els.models.replaceChildren(
    ...models.map((m) =>
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'models', value: m.id }), ` ${m.id}`),
    ),
  );
}

export function resetKeys() {
  hideSecret();
  els.table.tBodies[0].replaceChildren();
  els['show-revoked'].checked = false;
  els.form.reset();
  els.status.textContent = '';
  say(els.error, '');
  say(els['form-error'], '');
}

function hideSecret() {
  els['secret-value'].value = '';
  els['secret-copied'].textContent = '';
  els.secret.hidden = true;
}

function showError(err) {
  let message = err instanceof ApiError ? err.message : `Something went wrong: ${err}`;
  if (err instanceof ApiError && err.status === 401) message += ' Sign out, then sign in again as operator.';
  say(els.error, message);
}

export async function loadKeys() {
  els.refresh.disabled = true;
  els.status.textContent = 'Loading…';
  try {
    const keys = (await (await adminApi('/admin/keys')).json()).data ?? [];
    renderKeys(keys);
    const revoked = keys.filter((k) => k.status === 'revoked').length;
    const active = keys.length - revoked;
    const hiddenNote = revoked ? ` (${revoked} revoked ${els['show-revoked'].checked ? 'shown' : 'hidden'})` : '';
    els.status.textContent = `${active} ${active === 1 ? 'key' : 'keys'}${hiddenNote} · updated ${new Date().toLocaleTimeString()}`;
    say(els.error, '');
  } catch (err) {
    els.status.textContent = '';
    showError(err);
  } finally {
    els.refresh.disabled = false;
  }
}

const day = (iso) => (iso ? new Date(iso).toLocaleDateString() : 'never');
const when = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' }) : 'never');
const limit = (value) => (value ? numberFormat.format(value) : '–');

/** Whether this tab's own key is the one listed (secrets start with their display prefix). */
const isOwn = (key) => Boolean(session.key) && key.status === 'active' && session.key.startsWith(key.prefix);

function renderKeys(keys) {
  els.table.tBodies[0].replaceChildren(
    ...keys.map((key) => {
      const actions = h('td', { class: 'actions' });
      if (key.status !== 'revoked') actions.append(revokeButton(key, actions));
      const name = h('td', {}, key.name, isOwn(key) ? h('span', { class: 'tag', text: 'this tab' }) : null);
      const row = h(
        'tr',
        { 'data-key': key.name, 'data-status': key.status },
        name,
        h('td', {}, h('code', { text: `${key.prefix}…` })),
        h('td', {}, h('span', { class: `status ${key.status}`, text: key.status })),
        h('td', { class: 'models', text: key.models ? key.models.join(', ') : 'all' }),
        h('td', { class: 'num', text: limit(key.rpm) }),
        h('td', { class: 'num', text: limit(key.tpm) }),
        h('td', { class: 'num', text: limit(key.max_concurrent) }),
        h('td', { class: 'num', text: limit(key.monthly_tokens) }),
        h('td', { text: day(key.expires_at) }),
        h('td', { text: when(key.last_used_at) }),
        actions,
      );
      row.hidden = key.status === 'revoked' && !els['show-revoked'].checked;
      return row;
    }),
  );
}

/** Revoked keys stay in the list for the record, out of sight unless asked for. */
function showRevoked() {
  for (const row of els.table.tBodies[0].rows) {
    if (row.dataset.status === 'revoked') row.hidden = !els['show-revoked'].checked;
  }
  els.status.textContent = els.status.textContent.replace(/revoked (shown|hidden)/, `revoked ${els['show-revoked'].checked ? 'shown' : 'hidden'}`);
}

/** Revoke asks once more in place, so a stray click does not end someone's key. */
function revokeButton(key, cell) {
  const button = h('button', { type: 'button', class: 'button ghost small', text: 'Revoke', 'aria-label': `Revoke ${key.name}` });
  button.addEventListener('click', () => {
    const own = isOwn(key);
    const confirm = h('button', { type: 'button', class: 'button danger small', text: own ? 'Revoke and sign out' : 'Yes, revoke' });
    const cancel = h('button', { type: 'button', class: 'button ghost small', text: 'Cancel' });
    const question = own ? 'This tab uses this key.' : `Revoke “${key.name}”?`;
    cell.replaceChildren(h('span', { class: 'confirm small', text: question }), confirm, cancel);
    cancel.addEventListener('click', () => cell.replaceChildren(revokeButton(key, cell)));
    confirm.addEventListener('click', () => revoke(key, own, confirm));
    confirm.focus({ preventScroll: true }); // the row stays where it was: no sideways jump
  });
  return button;
}

async function revoke(key, own, button) {
  button.disabled = true;
  try {
    await adminApi(`/admin/keys/${encodeURIComponent(key.name)}/revoke`, { method: 'POST' });
  } catch (err) {
    button.disabled = false;
    showError(err);
    return;
  }
  if (own) {
    onOwnKeyRevoked(key);
    return;
  }
  await loadKeys();
  els.status.textContent = `Revoked “${key.name}”: it stops working at once. ${els.status.textContent}`;
}

function readLimits() {
  const limits = {};
  for (const [field, id, label] of LIMITS) {
    const raw = $(id).value.trim();
    if (!raw) continue;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${label} must be a whole number of at least 1, or empty for no limit.`);
    limits[field] = value;
  }
  return limits;
}

async function createKey(event) {
  event.preventDefault();
  const name = els.name.value.trim();
  say(els['form-error'], '');
  if (!KEY_NAME.test(name)) {
    say(els['form-error'], 'The name must be 1 to 64 letters, digits, ".", "_" or "-".');
    els.name.focus();
    return;
  }
  let limits;
  try {
    limits = readLimits();
  } catch (err) {
    say(els['form-error'], err.message);
    return;
  }
  const models = [...els.models.querySelectorAll('input:checked')].map((input) => input.value);
  els.create.disabled = true;
  try {
    const response = await adminApi('/admin/keys', {
      method: 'POST',
      json: { name, ...limits, ...(models.length ? { models } : {}) },
    });
    const created = await response.json();
    els.form.reset();
    showSecret(created);
    await loadKeys();
  } catch (err) {
    const message = err instanceof ApiError && err.code === 'key_name_taken'
      ? `A key named “${name}” exists already: choose another name.`
      : err instanceof ApiError ? err.message : String(err);
    say(els['form-error'], message);
  } finally {
    els.create.disabled = false;
  }
}

function showSecret(created) {
  els['secret-title'].textContent = `The new key “${created.name}”`;
  els['secret-value'].value = created.secret;
  els['secret-copied'].textContent = '';
  $('keys-secret-copy').textContent = 'Copy';
  els.secret.hidden = false;
  els['secret-value'].focus();
  els['secret-value'].select();
}
