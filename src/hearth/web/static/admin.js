// The operator's admin key, kept like the personal key: in this tab's session storage, so a
// reload stays signed in as operator, and sign-out or closing the tab forgets it. Only /admin
// calls send it.

import { ApiError, api } from './api.js';

const ADMIN_STORAGE = 'hearth.adminKey';
let secret = stored();
const listeners = new Set();

function stored() {
  try {
    return sessionStorage.getItem(ADMIN_STORAGE);
  } catch {
    return null;
  }
}

function keep(value) {
  try {
    if (value === null) sessionStorage.removeItem(ADMIN_STORAGE);
    else sessionStorage.setItem(ADMIN_STORAGE, value);
  } catch {
    /* storage disabled: the admin key lasts until the page reloads */
  }
}

export const admin = {
  get active() {
    return secret !== null;
  },
  set(value) {
    secret = value;
    keep(value);
    for (const listener of listeners) listener(true);
  },
  clear() {
    if (secret === null) return;
    secret = null;
    keep(null);
    for (const listener of listeners) listener(false);
  },
  /** Called with true or false when the admin session starts or ends. */
  onChange(listener) {
    listeners.add(listener);
  },
};

/** An /admin call with the admin key (or `adminKey`, to try one before keeping it). */
export async function adminApi(path, { adminKey = secret, ...options } = {}) {
  if (!adminKey) throw new ApiError('Sign in as operator (with the admin key) to manage keys.', { status: 401 });
  try {
    return await api(path, { ...options, key: adminKey, limits: false });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    if (adminKey === secret) admin.clear(); // changed on the server: this session can no longer manage keys
    const detail = err.detail ? `: ${err.detail}` : '';
    throw new ApiError(`The admin key was not accepted (401${detail}).`, { status: 401, code: err.code, detail: err.detail });
  }
}
