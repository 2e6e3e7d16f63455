// What a chat turn may carry beyond text: an attached image (sent as an OpenAI image_url part),
// structured output (a JSON schema the answer must match) and a sample tool the model may call.

import { $, h, say } from './dom.js';

const els = {};
let attached = null; // { name, url } of the image waiting to go with the next message

export const SAMPLE_SCHEMA = JSON.stringify(
  {
    type: 'object',
    properties: { city: { type: 'string' }, country: { type: 'string' } },
    required: ['city', 'country'],
    additionalProperties: false,
  },
  null,
  2,
);

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city.',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', description: 'The city, e.g. Paris' } },
      required: ['city'],
    },
  },
};

export function initExtras() {
  for (const id of ['chat-attach', 'chat-attachment', 'chat-json', 'chat-schema', 'chat-tool', 'chat-error']) {
    els[id.replace('chat-', '')] = $(id);
  }
  els.schema.defaultValue = SAMPLE_SCHEMA; // what the settings' reset (sign-out) goes back to
  els.schema.value = SAMPLE_SCHEMA;
  els.attach.addEventListener('change', () => {
    const file = els.attach.files[0];
    els.attach.value = '';
    if (file) attach(file);
  });
}

function attach(file) {
  if (!file.type.startsWith('image/')) {
    say(els.error, `“${file.name}” is not an image: attach a photo or picture file.`);
    return;
  }
  const reader = new FileReader();
  reader.addEventListener('load', () => {
    attached = { name: file.name, url: String(reader.result) };
    showAttachment();
  });
  reader.readAsDataURL(file);
}

function showAttachment() {
  if (!attached) {
    els.attachment.replaceChildren();
    els.attachment.hidden = true;
    return;
  }
  const remove = h('button', { type: 'button', class: 'button ghost small', text: 'Remove', 'aria-label': `Remove ${attached.name}` });
  remove.addEventListener('click', () => {
    attached = null;
    showAttachment();
  });
  els.attachment.replaceChildren(h('img', { src: attached.url, alt: '' }), h('span', { text: attached.name }), remove);
  els.attachment.hidden = false;
}

/** The image attached for the next message (taken: it goes with this one only), or null. */
export function takeAttachment() {
  const taken = attached;
  attached = null;
  showAttachment();
  return taken;
}

/** Put an image back (a retried turn sends what it sent before). */
export function restoreAttachment(image) {
  attached = image;
  showAttachment();
}

/** A user message: plain text, or text and an image as OpenAI content parts. */
export function userContent(text, image) {
  if (!image) return text;
  return [{ type: 'text', text }, { type: 'image_url', image_url: { url: image.url } }];
}

/** The request's `response_format` and `tools`, from the settings; throws with a message when the schema is not JSON. */
export function requestExtras() {
  const extras = {};
  if (els.json.checked) {
    let schema;
    try {
      schema = JSON.parse(els.schema.value);
    } catch (err) {
      throw new Error(`The JSON schema is not valid JSON: ${err.message}`);
    }
    extras.response_format = { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } };
  }
  if (els.tool.checked) {
    extras.tools = [WEATHER_TOOL];
    extras.tool_choice = 'required'; // the sample shows a call; a real client would leave it to the model
  }
  return extras;
}

/** Tool calls as they stream in (OpenAI's deltas), merged by index. */
export class ToolCalls {
  constructor() {
    this.calls = [];
  }

  add(deltas) {
    for (const delta of deltas ?? []) {
      const call = (this.calls[delta.index ?? 0] ??= { name: '', arguments: '' });
      if (delta.function?.name) call.name += delta.function.name;
      if (delta.function?.arguments) call.arguments += delta.function.arguments;
    }
  }

  /** The calls as the model asked for them: name(arguments). */
  text() {
    return this.calls.map((c) => `${c.name}(${c.arguments})`).join('\n');
  }
}
