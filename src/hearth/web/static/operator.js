// The operator console beyond keys: everyone's usage (per key, model, API family and rollout
// variant, with each shadow's agreement) and the rollout routes (create, change weights, switch
// a blue-green route, delete). Everything goes through the /admin API with the admin key.

import { ApiError } from './api.js';
import { adminApi } from './admin.js';
import { $, formatMs, h, numberFormat, say } from './dom.js';

const els = {};
const STRATEGIES = ['canary', 'ab', 'blue-green', 'shadow'];

export function initOperator() {
  for (const id of ['ops-usage-status', 'ops-usage-refresh', 'ops-usage-error', 'ops-usage-summary', 'ops-usage-keys',
    'ops-usage-models', 'ops-usage-families', 'ops-usage-variants', 'routes-status', 'routes-refresh', 'routes-error',
    'routes-table', 'routes-form', 'routes-alias', 'routes-strategy', 'routes-variants', 'routes-shadow',
    'routes-form-error', 'routes-save']) {
    els[id] = $(id);
  }
  els['ops-usage-refresh'].addEventListener('click', () => loadEveryonesUsage());
  els['routes-refresh'].addEventListener('click', () => loadRoutes());
  els['routes-form'].addEventListener('submit', saveRoute);
}

export function resetOperator() {
  for (const id of ['ops-usage-keys', 'ops-usage-models', 'ops-usage-families', 'ops-usage-variants', 'routes-table']) {
    els[id].tBodies[0].replaceChildren();
  }
  for (const id of ['ops-usage-status', 'ops-usage-summary', 'routes-status']) els[id].textContent = '';
  for (const id of ['ops-usage-error', 'routes-error', 'routes-form-error']) say(els[id], '');
  els['routes-form'].reset();
}

export function loadOperator() {
  loadEveryonesUsage();
  loadRoutes();
}

const count = (value) => numberFormat.format(value ?? 0);
const cell = (text, numeric = false) => h('td', { class: numeric ? 'num' : null, text });
function button(text, onClick, className = 'button ghost small', label = null) {
  const el = h('button', { type: 'button', class: className, text, 'aria-label': label });
  el.addEventListener('click', onClick);
  return el;
}
const errorText = (err) => (err instanceof ApiError ? err.message : `Something went wrong: ${err}`);

function groupRows(groups, { agreement = false } = {}) {
  const entries = Object.entries(groups ?? {});
  if (entries.length === 0) return [h('tr', {}, h('td', { colspan: agreement ? 6 : 5, class: 'muted', text: 'None yet.' }))];
  return entries.map(([name, g]) =>
    h('tr', { 'data-name': name }, h('th', { scope: 'row' }, h('code', { text: name })),
      cell(count(g.requests), true), cell(count(g.errors), true), cell(count(g.total_tokens), true),
      cell(formatMs(g.avg_latency_ms), true),
      agreement ? cell(g.avg_agreement === null ? '—' : `${(100 * g.avg_agreement).toFixed(0)}%`, true) : null),
  );
}

export async function loadEveryonesUsage() {
  els['ops-usage-refresh'].disabled = true;
  try {
    const usage = await (await adminApi('/admin/usage')).json();
    const success = usage.success_rate === null ? '—' : `${(100 * usage.success_rate).toFixed(1)}%`;
    els['ops-usage-summary'].textContent = `${count(usage.requests)} requests · ${count(usage.total_tokens)} tokens · `
      + `${success} succeeded · ${formatMs(usage.avg_latency_ms)} average latency`;
    els['ops-usage-keys'].tBodies[0].replaceChildren(...groupRows(usage.keys));
    const models = usage.models.length === 0
      ? [h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'None yet.' }))]
      : usage.models.map((m) => h('tr', { 'data-name': m.model }, h('th', { scope: 'row' }, h('code', { text: m.model })),
        cell(count(m.requests), true), cell(count(m.prompt_tokens), true), cell(count(m.completion_tokens), true),
        cell(count(m.total_tokens), true)));
    els['ops-usage-models'].tBodies[0].replaceChildren(...models);
    els['ops-usage-families'].tBodies[0].replaceChildren(...groupRows(usage.families));
    els['ops-usage-variants'].tBodies[0].replaceChildren(...groupRows(usage.variants, { agreement: true }));
    els['ops-usage-status'].textContent = `updated ${new Date().toLocaleTimeString()}`;
    say(els['ops-usage-error'], '');
  } catch (err) {
    els['ops-usage-status'].textContent = '';
    say(els['ops-usage-error'], errorText(err));
  } finally {
    els['ops-usage-refresh'].disabled = false;
  }
}

export async function loadRoutes() {
  els['routes-refresh'].disabled = true;
  try {
    const routes = (await (await adminApi('/admin/routes')).json()).data ?? [];
    els['routes-table'].tBodies[0].replaceChildren(...(routes.length
      ? routes.map(routeRow)
      : [h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No rollout routes: clients call models by name.' }))]));
    els['routes-status'].textContent = `${routes.length} route${routes.length === 1 ? '' : 's'}`;
    say(els['routes-error'], '');
  } catch (err) {
    els['routes-status'].textContent = '';
    say(els['routes-error'], errorText(err));
  } finally {
    els['routes-refresh'].disabled = false;
  }
}

const variantsText = (variants) => variants.map((v) => `${v.model}=${v.weight}`).join(', ');

function routeRow(route) {
  const actions = [button('Edit', () => editRoute(route), 'button ghost small', `Edit ${route.alias}`)];
  if (route.strategy === 'blue-green' && route.variants.length === 2) {
    actions.push(button('Switch', () => switchRoute(route), 'button small', `Switch ${route.alias} to its other variant`));
  }
  actions.push(button('Delete', () => deleteRoute(route), 'button ghost small', `Delete ${route.alias}`));
  return h('tr', { 'data-route': route.alias },
    h('th', { scope: 'row' }, h('code', { text: route.alias })),
    cell(route.strategy),
    h('td', {}, ...route.variants.map((v) => h('span', { class: `variant${v.weight > 0 ? ' live' : ''}`, text: `${v.model} ${v.weight}%` }))),
    cell(route.shadow ?? '—'),
    h('td', { class: 'actions' }, ...actions));
}

function editRoute(route) {
  els['routes-alias'].value = route.alias;
  els['routes-strategy'].value = route.strategy;
  els['routes-variants'].value = variantsText(route.variants);
  els['routes-shadow'].value = route.shadow ?? '';
  els['routes-alias'].focus();
}

async function putRoute(alias, body, done) {
  try {
    await adminApi(`/admin/routes/${encodeURIComponent(alias)}`, { method: 'PUT', json: body });
    els['routes-status'].textContent = done;
    await loadRoutes();
    els['routes-status'].textContent = done;
    return true;
  } catch (err) {
    say(els['routes-form-error'], errorText(err));
    return false;
  }
}

async function switchRoute(route) {
  // Blue-green: all traffic to the other variant at once.
  const variants = route.variants.map((v) => ({ model: v.model, weight: v.weight > 0 ? 0 : 100 }));
  const live = variants.find((v) => v.weight > 0).model;
  await putRoute(route.alias, { strategy: route.strategy, variants, shadow: route.shadow }, `“${route.alias}” now goes to ${live}.`);
}

async function deleteRoute(route) {
  try {
    await adminApi(`/admin/routes/${encodeURIComponent(route.alias)}`, { method: 'DELETE' });
    await loadRoutes();
    els['routes-status'].textContent = `Deleted “${route.alias}”.`;
  } catch (err) {
    say(els['routes-error'], errorText(err));
  }
}

function parseVariants(text) {
  const variants = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [model, weight = '100'] = part.split('=').map((p) => p.trim());
    const number = Number(weight);
    if (!model || !Number.isFinite(number) || number < 0 || number > 100) {
      throw new Error(`“${part}” is not model=weight (a weight from 0 to 100).`);
    }
    variants.push({ model, weight: number });
  }
  if (variants.length === 0) throw new Error('Name at least one model variant, as model=weight.');
  return variants;
}

async function saveRoute(event) {
  event.preventDefault();
  say(els['routes-form-error'], '');
  const alias = els['routes-alias'].value.trim();
  const strategy = els['routes-strategy'].value;
  if (!alias) return say(els['routes-form-error'], 'Give the route an alias: the model name clients will call.');
  if (!STRATEGIES.includes(strategy)) return say(els['routes-form-error'], 'Choose a strategy.');
  let variants;
  try {
    variants = parseVariants(els['routes-variants'].value);
  } catch (err) {
    return say(els['routes-form-error'], err.message);
  }
  const shadow = els['routes-shadow'].value.trim() || null;
  els['routes-save'].disabled = true;
  try {
    if (await putRoute(alias, { strategy, variants, shadow }, `Saved “${alias}”.`)) els['routes-form'].reset();
  } finally {
    els['routes-save'].disabled = false;
  }
}
