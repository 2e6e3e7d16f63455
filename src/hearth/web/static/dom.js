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

/** Put text on the clipboard; resolves to whether it worked. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No async clipboard (plain http on a LAN address is not a secure context): the older way.
  }
  const area = h('textarea', { class: 'visually-hidden', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

/** Buttons with data-copy="ID" copy that element's value (or text); data-status="ID" says so. */
export function wireCopyButtons(root = document) {
  for (const button of root.querySelectorAll('button[data-copy]')) {
    button.addEventListener('click', async () => {
      const source = document.getElementById(button.dataset.copy);
      const text = 'value' in source ? source.value : source.textContent;
      const copied = await copyText(text);
      const status = button.dataset.status ? document.getElementById(button.dataset.status) : null;
      if (status) status.textContent = copied ? 'Copied to the clipboard.' : 'Could not copy: select the text and copy it by hand.';
      button.textContent = copied ? 'Copied' : 'Copy';
    });
  }
}
