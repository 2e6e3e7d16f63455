// The usage dashboard for the signed-in key: totals, charts per day, per-model table,
// latency, remaining rate limits and the monthly budget.

import { ApiError, api, onRateLimits, rateLimits } from './api.js';
import { barChart, dailySeries, hourLabel } from './charts.js';
import { $, formatMs, h, numberFormat, say } from './dom.js';

const els = {};
let lastUsage = null;
let loading = false;

export function initDashboard({ onKeyName }) {
  for (const id of ['usage-title', 'usage-updated', 'usage-refresh', 'usage-error', 'usage-body', 'usage-stats',
    'usage-limits', 'usage-budget', 'usage-models', 'chart-requests', 'chart-tokens', 'chart-hours', 'usage-recent',
    'usage-batches']) {
    els[id] = $(id);
  }
  els.onKeyName = onKeyName;
  els['usage-refresh'].addEventListener('click', () => loadUsage());
  onRateLimits(() => {
    if (lastUsage) renderLimits(lastUsage.key);
  });
}

export function resetDashboard() {
  lastUsage = null;
  rateLimits.requests = null;
  rateLimits.tokens = null;
  els['usage-stats'].replaceChildren();
  els['usage-limits'].replaceChildren();
  els['usage-budget'].replaceChildren();
  els['usage-models'].tBodies[0].replaceChildren();
  els['chart-requests'].replaceChildren();
  els['chart-tokens'].replaceChildren();
  els['chart-hours'].replaceChildren();
  els['usage-recent'].tBodies[0].replaceChildren();
  els['usage-batches'].tBodies[0].replaceChildren();
  els['usage-updated'].textContent = '';
  els['usage-title'].textContent = 'Usage';
  say(els['usage-error'], '');
  shown = false;
}

let shown = false; // figures are on screen (a failed refresh keeps them; a failed first load shows none)

export async function loadUsage({ quiet = false } = {}) {
  if (loading) return lastUsage;
  loading = true;
  els['usage-refresh'].disabled = true;
  if (!quiet) els['usage-updated'].textContent = 'Loading…';
  try {
    const response = await api('/v1/usage');
    const usage = await response.json();
    lastUsage = usage;
    if (!quiet) {
      render(usage);
      renderRecent(await (await api('/v1/usage/recent?limit=20')).json());
      renderBatches((await (await api('/v1/batches?limit=20', { limits: false })).json()).data ?? []);
      shown = true;
    }
    els.onKeyName?.(usage.key);
    say(els['usage-error'], '');
    els['usage-body'].hidden = false;
    return usage;
  } catch (err) {
    if (!quiet && err?.status !== 401) { // a 401 has signed the user out already
      els['usage-updated'].textContent = '';
      const noKeys = err instanceof ApiError && err.status === 400;
      // Keep figures already on screen (the banner says the refresh failed); never empty cards.
      els['usage-body'].hidden = noKeys || !shown;
      say(
        els['usage-error'],
        noKeys
          ? 'Usage is kept per API key, and this server runs without keys (--no-auth), so there is nothing to show.'
          : err instanceof ApiError ? err.message : `Something went wrong: ${err}`,
      );
    }
    return null;
  } finally {
    loading = false;
    els['usage-refresh'].disabled = false;
  }
}

function stat(label, value, detail = null) {
  return h('div', { class: 'stat' }, h('dt', { text: label }), h('dd', {}, value, detail ? h('small', { text: detail }) : null));
}

function render(usage) {
  const key = usage.key ?? {};
  els['usage-title'].textContent = key.name ? `Usage for “${key.name}”` : 'Usage';
  els['usage-updated'].textContent = `Updated ${new Date().toLocaleTimeString()}`;
  const success = usage.success_rate === null || usage.success_rate === undefined
    ? '—'
    : `${(usage.success_rate * 100).toFixed(1)}%`;
  els['usage-stats'].replaceChildren(...[
    stat('Requests', numberFormat.format(usage.requests ?? 0),
      `${numberFormat.format(usage.errors ?? 0)} ${usage.errors === 1 ? 'error' : 'errors'}`),
    stat('Tokens', numberFormat.format(usage.total_tokens ?? 0),
      `${numberFormat.format(usage.prompt_tokens ?? 0)} prompt · ${numberFormat.format(usage.completion_tokens ?? 0)} completion`),
    stat('Images', numberFormat.format(usage.images ?? 0)),
    usage.audio_seconds ? stat('Audio', `${numberFormat.format(Math.round(usage.audio_seconds))} s`) : null,
    stat('Success rate', success),
    stat('Avg latency', formatMs(usage.avg_latency_ms)),
    stat('p95 latency', formatMs(usage.p95_latency_ms)),
  ].filter(Boolean));
  const days = usage.days ?? [];
  barChart(els['chart-requests'], dailySeries(days, 'requests'), 'requests');
  barChart(els['chart-tokens'], dailySeries(days, 'total_tokens'), 'tokens');
  renderLimits(key);
  renderBudget(usage.budget ?? {});
  renderModels(usage.models ?? []);
}

function limitText(kind, configured) {
  const seen = rateLimits[kind];
  if (configured === null || configured === undefined || seen?.unlimited) return 'Unlimited';
  if (!seen || seen.unlimited) {
    return `${numberFormat.format(configured)} per minute (remaining shown after your next ${kind === 'tokens' ? 'chat' : 'request'})`;
  }
  const reset = seen.reset ? `, resets in ${seen.reset}` : '';
  return `${numberFormat.format(seen.remaining)} of ${numberFormat.format(seen.limit)} left this minute${reset}`;
}

function renderLimits(key) {
  if (!key) return;
  els['usage-limits'].replaceChildren(
    h('dt', { text: 'Requests' }),
    h('dd', { 'data-limit': 'requests', text: limitText('requests', key.rpm) }),
    h('dt', { text: 'Tokens' }),
    h('dd', { 'data-limit': 'tokens', text: limitText('tokens', key.tpm) }),
    h('dt', { text: 'Concurrent' }),
    h('dd', { text: key.max_concurrent ? `${key.max_concurrent} at once` : 'Unlimited' }),
  );
}

function renderBudget(budget) {
  const el = els['usage-budget'];
  const used = budget.used_this_month ?? 0;
  if (!budget.monthly_tokens) {
    el.replaceChildren(
      h('p', { text: `No monthly budget: ${numberFormat.format(used)} tokens used this month.` }),
    );
    return;
  }
  const share = Math.min(1, used / budget.monthly_tokens);
  const fill = h('div', { class: share > 0.9 ? 'meter-fill high' : 'meter-fill' });
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  el.replaceChildren(
    h('p', {},
      h('strong', { text: numberFormat.format(budget.remaining ?? 0) }),
      ` tokens left of ${numberFormat.format(budget.monthly_tokens)} this month`),
    h('div', {
      class: 'meter',
      role: 'meter',
      'aria-label': 'Monthly budget used',
      'aria-valuemin': 0,
      'aria-valuemax': budget.monthly_tokens,
      'aria-valuenow': used,
    }, fill),
    h('p', { class: 'muted small', text: `${numberFormat.format(used)} used (${(share * 100).toFixed(1)}%). Resets on the 1st (UTC).` }),
  );
}

function renderModels(models) {
  const rows = models.map((m) =>
    h('tr', {},
      h('td', { text: !m.model || m.model === '-' ? 'other (models, usage)' : m.model }),
      ...[m.requests, m.prompt_tokens, m.completion_tokens, m.total_tokens, m.images, m.errors].map((v) =>
        h('td', { class: 'num', text: numberFormat.format(v ?? 0) }))),
  );
  els['usage-models'].tBodies[0].replaceChildren(
    ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'No requests yet.' }))]),
  );
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** The key's latest requests, one by one, and today's requests hour by hour. */
function renderRecent(recent) {
  const hours = (recent.hours ?? []).map((hour) => ({ label: hour.hour, value: hour.requests }));
  barChart(els['chart-hours'], hours, 'requests', { period: 'hour', label: hourLabel, column: 'Hour (UTC)' });
  const rows = (recent.requests ?? []).map((r) => {
    const failed = r.status >= 400;
    const status = h('span', { class: `status ${failed ? 'revoked' : 'active'}`, text: failed ? `${r.status} ${r.error ?? ''}`.trim() : String(r.status) });
    return h('tr', { 'data-status': r.status },
      h('td', { text: timeFormat.format(new Date(r.created_at)) }),
      h('td', {}, h('code', { text: r.route.replace(/^[A-Z]+ /, '') })),
      h('td', { text: r.model === '-' ? '—' : r.model }),
      h('td', {}, status),
      h('td', { class: 'num', text: numberFormat.format((r.prompt_tokens ?? 0) + (r.completion_tokens ?? 0)) }),
      h('td', { class: 'num', text: formatMs(r.latency_ms) }));
  });
  els['usage-recent'].tBodies[0].replaceChildren(
    ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'No requests yet.' }))]),
  );
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** The key's batch jobs (OpenAI's and Anthropic's), newest first, with their counts. */
function renderBatches(batches) {
  const rows = batches.map((b) => {
    const counts = b.request_counts ?? {};
    const failed = b.status === 'failed' || b.status === 'expired';
    return h('tr', { 'data-batch': b.id },
      h('td', {}, h('code', { text: b.id })),
      h('td', {}, h('code', { text: b.endpoint })),
      h('td', {}, h('span', { class: `status ${failed ? 'revoked' : 'active'}`, text: b.status })),
      ...[counts.completed, counts.failed, counts.total].map((v) => h('td', { class: 'num', text: numberFormat.format(v ?? 0) })),
      h('td', { text: dateTimeFormat.format(new Date(b.created_at * 1000)) }));
  });
  els['usage-batches'].tBodies[0].replaceChildren(
    ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'No batch jobs yet.' }))]),
  );
}
