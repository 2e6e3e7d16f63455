// The chat playground: streamed answers, a Stop button, the conversation sent each turn.

import { ApiError, api, sseEvents } from './api.js';
import { $, h, numberFormat, say } from './dom.js';
import { ToolCalls, initExtras, requestExtras, restoreAttachment, takeAttachment, userContent } from './chat_extras.js';
import { renderMarkdown } from './markdown.js';

const els = {};
let history = []; // [{role, content}] of finished turns, sent with each request
let controller = null; // the AbortController of the answer being streamed
let conversation = 0; // bumped by resetChat: a turn from an older conversation must not touch history
let picked = null; // the model the user chose, kept across model-list refreshes
let failedTurn = null; // the bubbles of a turn that got nothing back: a resend takes their place

export function initChat() {
  for (const id of ['chat-model', 'chat-system', 'chat-temperature', 'chat-max-tokens', 'chat-new', 'chat-log',
    'chat-empty', 'chat-error', 'chat-form', 'chat-input', 'chat-send', 'chat-stop']) {
    els[id.replace('chat-', '')] = $(id);
  }
  els.form.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  els.input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  els.stop.addEventListener('click', stop);
  // Enter in a settings field must not submit (and reload) the page.
  $('chat-settings').addEventListener('submit', (event) => event.preventDefault());
  $('chat-settings').addEventListener('reset', () => {
    picked = null; // the next person starts on the default model
  });
  els.model.addEventListener('change', () => {
    picked = els.model.value;
    showModelDefaults();
  });
  els.new.addEventListener('click', resetChat);
  initExtras();
}

const KINDS = {
  chat: 'chat',
  embedding: 'embeddings',
  'image-classification': 'image classification',
  rerank: 'rerank',
  'speech-to-text': 'speech to text',
  'text-to-speech': 'text to speech',
};
const isDefault = (m) => (m.aliases ?? []).includes('default');
/** Why a model is not ready yet, in words: one loaded on first use is not "loading". */
const waiting = (m) => (m.ready !== false ? null : m.state === 'unloaded' ? 'loads on first use' : m.state ?? 'loading');

/**
 * Fill the model picker with the chat models: the current choice when it still exists, else the
 * server's default chat model (alias "default", or `preferred` from /ui/config), else the first.
 * The list under it shows every model with its kind, in the start-up banner's words.
 */
export function setChatModels(models, preferred = null) {
  const chat = models.filter((m) => m.kind === 'chat' || m.kind === undefined);
  els.model.replaceChildren(
    ...chat.map((m) => {
      const notes = [isDefault(m) ? 'default' : null, waiting(m)].filter(Boolean);
      return h('option', { value: m.id, text: notes.length ? `${m.id} (${notes.join(', ')})` : m.id });
    }),
  );
  const choice = [picked, chat.find(isDefault)?.id, preferred].find((id) => id && chat.some((m) => m.id === id));
  if (choice) els.model.value = choice;
  showModelDefaults();
  els.model.disabled = chat.length === 0;
  els.send.disabled = chat.length === 0;
  say(els.error, chat.length === 0 ? 'No chat model is available to this key.' : '');
  $('model-list').replaceChildren(
    ...models.map((m) => {
      const kind = [KINDS[m.kind] ?? m.kind ?? 'chat', isDefault(m) ? 'default' : null, waiting(m)];
      return h('li', { 'data-model': m.id },
        h('span', { class: 'model-id', text: m.id }),
        h('span', { class: 'kind', text: kind.filter(Boolean).join(', ') }),
        m.description ? h('span', { class: 'description', text: m.description }) : null);
    }),
  );
}

/**
 * A blank Temperature means the model's own default (what its operator configured, e.g. greedy
 * for the default model): show that value as the placeholder, and send a temperature only when
 * the user typed one. Reading a model's card spends none of the key's limits.
 */
async function showModelDefaults() {
  const model = els.model.value;
  els.temperature.placeholder = 'default';
  if (!model) return;
  try {
    const card = await (await api(`/v1/models/${encodeURIComponent(model)}`)).json();
    const temperature = card.sampling?.temperature;
    if (els.model.value === model && typeof temperature === 'number') {
      els.temperature.placeholder = `default: ${temperature}`;
    }
  } catch {
    // The placeholder stays generic; sending still works.
  }
}

export function resetChat() {
  stop();
  failedTurn = null;
  conversation += 1;
  history = [];
  els.log.replaceChildren();
  els.empty.hidden = false;
  say(els.error, '');
}

export function stop() {
  if (controller) controller.abort();
}

function readNumber(input, { min, max, integer, optional = false }) {
  if (optional && input.value.trim() === '') return undefined; // left to the model's default
  const value = Number(input.value);
  if (input.value.trim() === '' || !Number.isFinite(value) || value < min || value > max) return null;
  if (integer && !Number.isInteger(value)) return null;
  return value;
}

function messageItem(role, text) {
  const body = h('div', { class: 'text' });
  const textNode = document.createTextNode(text);
  body.append(textNode);
  const meta = h('div', { class: 'meta' });
  const item = h('li', { class: `message ${role}` }, h('div', { class: 'who', text: role === 'user' ? 'You' : 'Assistant' }), body, meta);
  els.log.append(item);
  els.empty.hidden = true;
  return { item, body, textNode, meta };
}

function scrollToEnd() {
  const log = els.log;
  if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) log.scrollTop = log.scrollHeight;
}

function setBusy(busy) {
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.model.disabled = busy;
  if (busy) els.stop.focus();
  else if (document.activeElement === els.stop || document.activeElement === document.body) els.input.focus();
}

/** The usage line: the wait before the first token and the writing speed after it, apart. */
function usageText(usage, seconds, firstTokenSeconds, finish) {
  const parts = [];
  if (usage) {
    parts.push(
      `${numberFormat.format(usage.prompt_tokens)} prompt + ${numberFormat.format(usage.completion_tokens)} completion = ${numberFormat.format(usage.total_tokens)} tokens`,
    );
  }
  if (firstTokenSeconds !== null) {
    parts.push(`first token after ${firstTokenSeconds.toFixed(1)} s`);
    const writing = seconds - firstTokenSeconds;
    // The first token came with the wait; the speed is of the ones after it.
    if (usage && usage.completion_tokens > 1 && writing > 0) {
      parts.push(`${((usage.completion_tokens - 1) / writing).toFixed(1)} tok/s`);
    }
  }
  parts.push(`${seconds.toFixed(1)} s`);
  if (finish === 'length') parts.push('stopped at max tokens');
  return parts.join(' · ');
}

async function send() {
  if (controller) return;
  const text = els.input.value.trim();
  if (!text) return;
  const model = els.model.value;
  const temperature = readNumber(els.temperature, { min: 0, max: 2, optional: true });
  const maxTokens = readNumber(els['max-tokens'], { min: 1, max: 1_000_000, integer: true });
  if (!model) return say(els.error, 'Pick a model first.');
  if (temperature === null) return say(els.error, 'Temperature must be a number from 0 to 2.');
  if (maxTokens === null) return say(els.error, 'Max tokens must be a whole number of at least 1.');
  let extras;
  try {
    extras = requestExtras();
  } catch (err) {
    return say(els.error, err.message);
  }
  say(els.error, '');
  const image = takeAttachment();

  if (failedTurn) {
    // The user is sending again what failed: the new turn replaces the failed one.
    for (const bubble of failedTurn) bubble.remove();
    failedTurn = null;
  }
  const mine = conversation;
  const remember = (message) => {
    if (mine === conversation) history.push(message);
  };
  const system = els.system.value.trim();
  const turn = { role: 'user', content: userContent(text, image) };
  history.push(turn);
  const messages = [...(system ? [{ role: 'system', content: system }] : []), ...history];
  els.input.value = '';
  const asked = messageItem('user', text);
  if (image) asked.body.append(h('img', { class: 'attached', src: image.url, alt: `Attached: ${image.name}` }));
  const answer = messageItem('assistant', '');
  answer.item.dataset.state = 'streaming';
  answer.item.setAttribute('aria-busy', 'true');
  answer.meta.textContent = 'Thinking…';
  scrollToEnd();

  const ours = new AbortController();
  controller = ours;
  setBusy(true);
  const started = performance.now();
  let content = '';
  let usage = null;
  let finish = null;
  let firstTokenAt = null;
  let wroteIt = model;
  const tools = new ToolCalls();
  // Once an answer is finished (or cut short), its Markdown is rendered (a JSON answer is shown
  // as indented JSON, tool calls as code); while it streams it is plain text.
  const format = () => {
    const parts = [];
    if (content.trim()) parts.push(extras.response_format ? asJson(content) : renderMarkdown(content.trim()));
    if (tools.calls.length) parts.push(h('p', { class: 'muted small', text: 'Calls a tool:' }), h('pre', {}, h('code', { text: tools.text() })));
    if (parts.length) answer.body.replaceChildren(...parts);
  };
  const reply = () => content || tools.text();
  const retry = () => offerRetry({ text, image, asked, answer, turn });
  try {
    const response = await api('/v1/chat/completions', {
      method: 'POST',
      signal: ours.signal,
      json: {
        model,
        messages,
        stream: true,
        stream_options: { include_usage: true },
        ...(temperature === undefined ? {} : { temperature }), // blank: the model's own default
        max_tokens: maxTokens,
        ...extras,
      },
    });
    answer.meta.textContent = 'Writing…';
    for await (const event of sseEvents(response)) {
      if (event.error) {
        throw new ApiError(`The model failed mid-answer: ${event.error.message ?? 'unknown error'}`, { kind: 'stream' });
      }
      for (const choice of event.choices ?? []) {
        if (choice.index !== 0) continue;
        const delta = choice.delta?.content;
        if (delta) {
          if (firstTokenAt === null) firstTokenAt = performance.now();
          content += delta;
          answer.textNode.data = content.trimStart();
          scrollToEnd();
        }
        if (choice.delta?.tool_calls) {
          if (firstTokenAt === null) firstTokenAt = performance.now();
          tools.add(choice.delta.tool_calls);
          answer.textNode.data = `${content.trimStart()}${content ? '\n' : ''}${tools.text()}`;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (event.usage) usage = event.usage;
      if (event.model) wroteIt = event.model;
    }
    remember({ role: 'assistant', content: reply() });
    answer.item.dataset.state = 'done';
    format();
    const firstSeconds = firstTokenAt === null ? null : (firstTokenAt - started) / 1000;
    // Which model wrote it: a route or an alias may stand for another model than the one picked.
    answer.meta.textContent = `${wroteIt} · ${usageText(usage, (performance.now() - started) / 1000, firstSeconds, finish)}`;
    $('chat-announce').textContent = reply().trim();
    answer.meta.classList.add('usage');
    retry();
  } catch (err) {
    if (err && err.name === 'AbortError') {
      answer.item.dataset.state = 'stopped';
      answer.meta.textContent = `Stopped by you after ${((performance.now() - started) / 1000).toFixed(1)} s.`;
      // Keep what was written, so the next turn has the context the user saw.
      format();
      if (reply()) {
        remember({ role: 'assistant', content: reply() });
        retry();
      } else if (mine === conversation) {
        history.pop();
      }
    } else if (err?.status === 401) {
      // The key was refused: the user is signed out already and this turn is gone with the rest.
    } else {
      answer.item.dataset.state = 'error';
      const message = err instanceof ApiError ? err.message : `Something went wrong: ${err}`;
      answer.meta.textContent = message;
      answer.meta.classList.add('error');
      answer.meta.setAttribute('role', 'alert');
      if (reply()) {
        format();
        remember({ role: 'assistant', content: reply() });
        retry();
      } else if (mine === conversation) {
        // Nothing came back: drop the turn and give the text back to retry.
        const at = history.indexOf(turn);
        if (at !== -1) history.splice(at, 1);
        if (!els.input.value) els.input.value = text;
        if (image) restoreAttachment(image);
        failedTurn = [asked.item, answer.item];
      }
    }
  } finally {
    answer.item.removeAttribute('aria-busy');
    if (controller === ours) {
      controller = null;
      setBusy(false);
    }
    scrollToEnd();
  }
}

/** A JSON answer, indented when it parses (structured output); as text when it does not. */
function asJson(text) {
  try {
    return h('pre', {}, h('code', { text: JSON.stringify(JSON.parse(text), null, 2) }));
  } catch {
    return renderMarkdown(text.trim());
  }
}

/**
 * A Retry button under the last answer: the question goes again, in place of this turn (its
 * bubbles and its two messages in the history), with the same attachment.
 */
function offerRetry({ text, image, asked, answer, turn }) {
  for (const old of els.log.querySelectorAll('.retry')) old.remove(); // only the last turn retries
  const button = h('button', { type: 'button', class: 'button ghost small retry', text: 'Retry', 'aria-label': 'Ask this again' });
  button.addEventListener('click', () => {
    if (controller) return;
    const at = history.indexOf(turn);
    if (at !== -1) history.splice(at); // the question, and the answer after it
    asked.item.remove();
    answer.item.remove();
    if (image) restoreAttachment(image);
    els.input.value = text;
    send();
  });
  answer.item.append(button);
}
