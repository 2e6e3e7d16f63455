// The operator's view of the models (signed in with the admin key): each model's state, and for
// upstream models each endpoint's health, breaker, requests in flight, queue and latency.

import { ApiError } from './api.js';
import { adminApi } from './admin.js';
import { $, formatMs, h, numberFormat, say } from './dom.js';

const els = {};

export function initModels() {
  for (const id of ['models-status', 'models-refresh', 'models-error', 'models-table']) {
    els[id.replace('models-', '')] = $(id);
  }
  els.refresh.addEventListener('click', () => loadModels());
}

export function resetModels() {
  els.table.tBodies[0].replaceChildren();
  els.status.textContent = '';
  say(els.error, '');
}

export async function loadModels() {
  els.refresh.disabled = true;
  try {
    const models = (await (await adminApi('/admin/models')).json()).data ?? [];
    els.table.tBodies[0].replaceChildren(...models.flatMap(modelRows));
    els.status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    say(els.error, '');
  } catch (err) {
    els.status.textContent = '';
    say(els.error, err instanceof ApiError ? err.message : `Something went wrong: ${err}`);
  } finally {
    els.refresh.disabled = false;
  }
}

const count = (value) => (value === null || value === undefined ? '–' : numberFormat.format(value));

/** One row per endpoint of an upstream model (the model's cells span them), one for a local model. */
function modelRows(model) {
  const endpoints = model.endpoints ?? [];
  const span = Math.max(1, endpoints.length);
  const state = model.error ? `${model.state}: ${model.error}` : model.state;
  const head = [
    h('td', { rowspan: span }, h('code', { text: model.id })),
    h('td', { rowspan: span, text: model.backend }),
    h('td', { rowspan: span }, h('span', { class: `status ${model.state}`, text: state })),
    h('td', { rowspan: span, class: 'num', text: count(model.in_flight) }),
  ];
  if (endpoints.length === 0) {
    return [h('tr', { 'data-model': model.id }, ...head, h('td', { colspan: 6, class: 'muted', text: 'local' }), loadCell(model))];
  }
  return endpoints.map((endpoint, index) =>
    h(
      'tr',
      { 'data-model': model.id, 'data-endpoint': endpoint.endpoint },
      ...(index === 0 ? head : []),
      h('td', {}, h('code', { text: endpoint.endpoint })),
      h('td', {}, h('span', { class: `status ${endpoint.healthy ? 'active' : 'revoked'}`, text: endpoint.healthy ? 'healthy' : 'down' }),
        endpoint.last_error ? h('span', { class: 'muted small', text: ` ${endpoint.last_error}` }) : null),
      h('td', { text: endpoint.breaker }),
      h('td', { class: 'num', text: `${count(endpoint.in_flight)} / ${count(endpoint.server_queue)}` }),
      h('td', { class: 'num', text: formatMs(endpoint.latency_ms) }),
      h('td', { class: 'num', text: `${count(endpoint.requests)} / ${count(endpoint.errors)}` }),
      index === 0 ? h('td', { rowspan: span }) : null,
    ),
  );
}

/** Load a model that is not in memory, or free one that is (this replica; it stays configured). */
function loadCell(model) {
  const action = { ready: 'unload', unloaded: 'load', failed: 'load' }[model.state];
  if (!action) return h('td', {});
  const label = action === 'load' ? 'Load' : 'Unload';
  const button = h('button', { type: 'button', class: 'button ghost small', text: label, 'aria-label': `${label} ${model.id}` });
  button.addEventListener('click', async () => {
    button.disabled = true;
    els.status.textContent = `${action === 'load' ? 'Loading' : 'Unloading'} ${model.id}…`;
    try {
      await adminApi(`/admin/models/${encodeURIComponent(model.id)}/${action}`, { method: 'POST' });
      await loadModels();
      els.status.textContent = `${model.id} ${action === 'load' ? 'loaded' : 'unloaded'}.`;
    } catch (err) {
      button.disabled = false;
      els.status.textContent = '';
      say(els.error, err instanceof ApiError ? err.message : `Something went wrong: ${err}`);
    }
  });
  return h('td', { class: 'actions' }, button);
}
