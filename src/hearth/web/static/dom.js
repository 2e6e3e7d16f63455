// Tiny DOM helpers. Text always goes in through textContent / text nodes, never innerHTML,
// so model output, labels and error messages can never inject markup.

/** Create an element: h('li', {class: 'x', text: 'hi'}, child, 'more text'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = String(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const $ = (id) => document.getElementById(id);

/** Show a message in an element (hidden when empty). */
export function say(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

export const numberFormat = new Intl.NumberFormat();
export const compactFormat = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

export function formatMs(ms) {
  if (ms === null || ms === undefined) return '—';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}
