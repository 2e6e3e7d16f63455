// The HTTP client: the signed-in key, OpenAI-style errors, rate-limit headers and SSE streams.

const KEY_STORAGE = 'hearth.apiKey';

/** The API key lives in sessionStorage only: this tab, until sign-out or the tab closes. */
export const session = {
  get key() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch {
      return null;
    }
  },
  set(key) {
    sessionStorage.setItem(KEY_STORAGE, key);
  },
  clear() {
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      /* storage disabled: nothing was kept */
    }
  },
};

export class ApiError extends Error {
  constructor(message, { status = 0, code = null, type = null, retryAfter = null, kind = 'http', detail = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.type = type;
    this.detail = detail; // the server's own message, without the explanation around it
    this.retryAfter = retryAfter;
    this.kind = kind; // 'http' | 'network' | 'stream'
  }
}

/** The latest x-ratelimit-* values seen for the signed-in key. */
export const rateLimits = { requests: null, tokens: null };
const limitListeners = new Set();
export function onRateLimits(listener) {
  limitListeners.add(listener);
}

let unauthorizedHandler = null;
/** Called with the ApiError when a request made with the stored key gets a 401. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function captureLimits(response, keyed) {
  if (!keyed || response.status === 401) return;
  let changed = false;
  for (const kind of ['requests', 'tokens']) {
    const limit = response.headers.get(`x-ratelimit-limit-${kind}`);
    if (limit !== null) {
      rateLimits[kind] = {
        limit: Number(limit),
        remaining: Number(response.headers.get(`x-ratelimit-remaining-${kind}`)),
        reset: response.headers.get(`x-ratelimit-reset-${kind}`),
        at: new Date(),
      };
      changed = true;
    } else if (kind === 'requests') {
      // Every keyed route counts requests: no header means this key has no rpm limit.
      rateLimits.requests = { unlimited: true, at: new Date() };
      changed = true;
    }
  }
  if (changed) for (const listener of limitListeners) listener(rateLimits);
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function describe(status, message, retryAfter) {
  const detail = message ? `: ${message}` : '';
  const wait = retryAfter !== null ? ` Try again in ${retryAfter} s.` : ' Try again shortly.';
  if (status === 401) return `Your API key was not accepted (401${detail}).`;
  if (status === 403) return `This key is not allowed to do that (403${detail}).`;
  if (status === 413) return `That is too large for the server (413${detail}).`;
  if (status === 429) return `Rate limit reached (429${detail}).${wait}`;
  if (status >= 500) return `The server could not answer (${status}${detail}).${wait}`;
  return message || `The request failed with status ${status}.`;
}

async function errorFrom(response) {
  let message = '';
  let code = null;
  let type = null;
  try {
    const body = await response.json();
    const error = body && body.error;
    if (error && typeof error === 'object') {
      message = String(error.message ?? '');
      code = error.code ?? null;
      type = error.type ?? null;
    }
  } catch {
    /* not JSON: a proxy's error page, say */
  }
  const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
  return new ApiError(describe(response.status, message, retryAfter), {
    status: response.status,
    code,
    type,
    retryAfter,
    detail: message,
  });
}

/**
 * fetch() with the stored key; resolves to the Response when it is OK, else throws ApiError.
 * Pass `key` to try a key that is not stored yet (sign-in), or `key: null` to send none;
 * `limits: false` for calls whose headers say nothing about the playground key's rate limits.
 */
export async function api(path, { method = 'GET', json, body, signal, key = session.key, limits = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, cache: 'no-store', credentials: 'omit' });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('Could not reach the Hearth server. Check that it is running and that you are online.', {
      kind: 'network',
    });
  }
  captureLimits(response, Boolean(key) && limits);
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && key && key === session.key && unauthorizedHandler) unauthorizedHandler(error);
    throw error;
  }
  return response;
}

/** The JSON payloads of a text/event-stream response, until `data: [DONE]`. */
export async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let finished = false;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (err && err.name === 'AbortError') throw err;
        throw new ApiError('The connection to the server was lost mid-answer.', { kind: 'network' });
      }
      if (chunk.done) {
        finished = true;
        return;
      }
      buffer += decoder.decode(chunk.value, { stream: true });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) !== -1) {
        const raw = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        const data = raw
          .split(/\r?\n/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, ''))
          .join('\n');
        if (!data) continue;
        if (data === '[DONE]') {
          // Read the (empty) rest, so the request ends normally instead of being cancelled.
          while (!(await reader.read()).done);
          finished = true;
          return;
        }
        yield JSON.parse(data);
      }
    }
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}

/** GET /ui/config, sent without a key: whether auth is on, and how to get a key. */
export async function getConfig() {
  const response = await api('/ui/config', { key: null });
  return response.json();
}

/** GET /v1/models: resolves to the list of model cards. */
export async function listModels(options = {}) {
  const response = await api('/v1/models', options);
  const body = await response.json();
  return Array.isArray(body.data) ? body.data : [];
}
