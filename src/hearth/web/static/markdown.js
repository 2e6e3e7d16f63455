// Markdown as models write it, rendered safely: every piece of text becomes a text node and
// every element is made here (never innerHTML), so an answer cannot inject markup or script.
// Covered: paragraphs and line breaks, headings, bullet and numbered lists, block quotes,
// fenced and inline code, bold, italics, rules and http(s) links. Anything else stays text.

import { h } from './dom.js';

const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*|__[^_\n]+__)|(\*[^*\s][^*\n]*\*|_[^_\s][^_\n]*_)|(\[[^\]\n]+\]\((https?:\/\/[^\s)]+)\))/;

/** The inline pieces of one line of text, as nodes. */
function inline(text) {
  const nodes = [];
  let rest = text;
  for (let match = INLINE.exec(rest); match; match = INLINE.exec(rest)) {
    if (match.index > 0) nodes.push(document.createTextNode(rest.slice(0, match.index)));
    const [whole, code, bold, italic, link, url] = match;
    if (code) nodes.push(h('code', { text: code.slice(1, -1) }));
    else if (bold) nodes.push(h('strong', {}, ...inline(bold.slice(2, -2))));
    else if (italic) nodes.push(h('em', {}, ...inline(italic.slice(1, -1))));
    else if (link) {
      const label = link.slice(1, link.indexOf(']('));
      nodes.push(h('a', { href: url, rel: 'noopener noreferrer nofollow', target: '_blank' }, ...inline(label)));
    }
    rest = rest.slice(match.index + whole.length);
  }
  if (rest) nodes.push(document.createTextNode(rest));
  return nodes;
}

function withBreaks(lines) {
  return lines.flatMap((line, i) => (i === 0 ? inline(line) : [h('br'), ...inline(line)]));
}

const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*$/;
const FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;

/** A fragment holding ``text`` rendered as Markdown. */
export function renderMarkdown(text) {
  const out = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i += 1) body.push(lines[i]);
      i += 1; // the closing fence (or the end of an answer cut short)
      out.append(h('pre', {}, h('code', { class: fence[2] ? `language-${fence[2]}` : null, text: body.join('\n') })));
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      out.append(h(`h${Math.min(6, heading[1].length + 2)}`, {}, ...inline(heading[2])));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      out.append(h('hr'));
      i += 1;
      continue;
    }
    const list = BULLET.test(line) ? [BULLET, 'ul'] : NUMBERED.test(line) ? [NUMBERED, 'ol'] : null;
    if (list) {
      const [pattern, tag] = list;
      const items = h(tag);
      while (i < lines.length && pattern.test(lines[i])) items.append(h('li', {}, ...inline(pattern.exec(lines[i++])[1])));
      out.append(items);
      continue;
    }
    if (line.startsWith('>')) {
      const quoted = [];
      while (i < lines.length && lines[i].startsWith('>')) quoted.push(lines[i++].replace(/^>\s?/, ''));
      out.append(h('blockquote', {}, renderMarkdown(quoted.join('\n'))));
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !HEADING.test(lines[i])
      && !BULLET.test(lines[i]) && !NUMBERED.test(lines[i]) && !lines[i].startsWith('>')) {
      paragraph.push(lines[i++]);
    }
    if (paragraph.length) out.append(h('p', {}, ...withBreaks(paragraph)));
  }
  return out;
}
