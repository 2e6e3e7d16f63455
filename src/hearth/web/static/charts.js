// A small SVG bar chart (no library): bars, a few gridlines, sparse date labels, tooltips,
// and the same numbers as a table for screen readers and copy-paste.

import { compactFormat, h, numberFormat } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 560;
const HEIGHT = 200;
const PAD = { top: 10, right: 8, bottom: 26, left: 44 };

function svg(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

/** Whole-number axis ticks: a round step (1, 2, 5 × 10^n) and at most four intervals. */
function axis(value) {
  const raw = Math.max(1, value / 4);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const intervals = Math.max(1, Math.ceil(value / step));
  return { max: step * intervals, step, intervals };
}

const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });

export function shortDay(isoDate) {
  return dayFormat.format(new Date(`${isoDate}T00:00:00Z`));
}

/** The hour of a point of `hourlySeries`: "09:00". */
export const hourLabel = (hour) => `${String(hour).padStart(2, '0')}:00`;

/**
 * Render `points` ([{label: 'YYYY-MM-DD', value}]) into `container` as a bar chart.
 * `name` describes the series ("requests", "tokens"); `period`, `label` and `column` say what
 * a point is (a UTC day by default; hours with `hourLabel`).
 */
export function barChart(container, points, name, { period = 'day', label = shortDay, column = 'Day (UTC)' } = {}) {
  const { max, step, intervals } = axis(Math.max(0, ...points.map((p) => p.value)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const total = points.reduce((sum, p) => sum + p.value, 0);
  const peak = points.reduce((best, p) => (p.value > best.value ? p : best), { value: -1 });
  const summary = points.length
    ? `${name} per ${period}, ${label(points[0].label)} to ${label(points[points.length - 1].label)}: ` +
      `${numberFormat.format(total)} in all` +
      (peak.value > 0 ? `, most ${period === 'day' ? 'on' : 'at'} ${label(peak.label)} (${numberFormat.format(peak.value)})` : '')
    : `no ${name} yet`;

  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': summary });
  root.append(svg('title', {}, summary));

  for (let i = 0; i <= intervals; i += 1) {
    const value = step * i;
    const y = PAD.top + plotH - (plotH * i) / intervals;
    root.append(svg('line', { class: 'grid-line', x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }));
    root.append(
      svg('text', { class: 'axis-label', x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, compactFormat.format(value)),
    );
  }

  const slot = plotW / Math.max(1, points.length);
  const barWidth = Math.max(2, Math.min(36, slot * 0.7));
  const labelEvery = Math.max(1, Math.ceil(points.length / 7));
  points.forEach((point, i) => {
    const x = PAD.left + slot * i + (slot - barWidth) / 2;
    const barH = (plotH * point.value) / max;
    const bar = svg('rect', {
      class: 'bar',
      x: x.toFixed(1),
      y: (PAD.top + plotH - barH).toFixed(1),
      width: barWidth.toFixed(1),
      height: Math.max(point.value > 0 ? 1.5 : 0, barH).toFixed(1),
      rx: 2,
    });
    bar.append(svg('title', {}, `${label(point.label)}: ${numberFormat.format(point.value)} ${name}`));
    root.append(bar);
    const fromEnd = points.length - 1 - i;
    if (fromEnd % labelEvery === 0) {
      root.append(
        svg('text', { class: 'axis-label', x: (x + barWidth / 2).toFixed(1), y: HEIGHT - 8, 'text-anchor': 'middle' },
          label(point.label)),
      );
    }
  });

  const rows = points
    .filter((p) => p.value > 0)
    .map((p) => h('tr', {}, h('td', { text: period === 'day' ? p.label : label(p.label) }), h('td', { class: 'num', text: numberFormat.format(p.value) })));
  const table = h(
    'details',
    {},
    h('summary', { text: 'Show as a table' }),
    h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: column }), h('th', { scope: 'col', class: 'num', text: name }))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 2, text: `No ${name} yet.` })))),
  );
  container.replaceChildren(root, table);
}

/** UTC days from `days` back to today, filling the gaps with zeros (at most `limit` days). */
export function dailySeries(rows, field, { minDays = 14, limit = 60 } = {}) {
  const byDay = new Map();
  for (const row of rows) byDay.set(row.date ?? row.day, Number(row[field]) || 0);
  const today = new Date();
  const todayUtc = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
  const earliest = [...byDay.keys()].reduce((min, d) => Math.min(min, Date.parse(`${d}T00:00:00Z`)), todayUtc);
  const span = Math.min(limit, Math.max(minDays, Math.round((todayUtc - earliest) / 86_400_000) + 1));
  const points = [];
  for (let i = span - 1; i >= 0; i -= 1) {
    const label = new Date(todayUtc - i * 86_400_000).toISOString().slice(0, 10);
    points.push({ label, value: byDay.get(label) ?? 0 });
  }
  return points;
}
