// Speech to text: upload an audio file or record from the microphone, and watch the transcript
// stream in (OpenAI's /v1/audio/transcriptions with stream=true; translations come whole).

import { ApiError, api, sseEvents } from './api.js';
import { $, h, say } from './dom.js';

const els = {};
let busy = false;
let recorder = null;
let chunks = [];

export function initSpeech() {
  for (const id of ['speech-model', 'speech-task', 'speech-language', 'speech-file', 'speech-record',
    'speech-status', 'speech-error', 'speech-result', 'speech-text', 'speech-name']) {
    els[id.replace('speech-', '')] = $(id);
  }
  els.file.addEventListener('change', () => {
    if (els.file.files.length) transcribe(els.file.files[0]);
    els.file.value = '';
  });
  els.record.addEventListener('click', toggleRecording);
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === 'undefined') {
    els.record.disabled = true;
    els.record.title = 'This browser cannot record here (recording needs https or localhost).';
  }
}

export function setSpeechModels(models) {
  const speech = models.filter((m) => m.kind === 'speech-to-text');
  const previous = els.model.value;
  els.model.replaceChildren(...speech.map((m) => h('option', { value: m.id, text: m.id })));
  if (speech.some((m) => m.id === previous)) els.model.value = previous;
  const none = speech.length === 0;
  for (const el of [els.model, els.file, els.task, els.language]) el.disabled = none;
  if (none) els.record.disabled = true;
  say(els.error, none ? 'No speech-to-text model is available to this key.' : '');
}

export function resetSpeech() {
  if (recorder && recorder.state !== 'inactive') recorder.stop();
  els.result.hidden = true;
  els.text.textContent = '';
  els.status.textContent = '';
  say(els.error, '');
}

async function toggleRecording() {
  if (recorder && recorder.state === 'recording') {
    recorder.stop();
    return;
  }
  say(els.error, '');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    say(els.error, `The microphone could not be opened (${err?.message || err}). Allow it, or upload a file instead.`);
    return;
  }
  chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.addEventListener('dataavailable', (event) => {
    if (event.data.size) chunks.push(event.data);
  });
  recorder.addEventListener('stop', () => {
    for (const track of stream.getTracks()) track.stop();
    els.record.textContent = 'Record';
    els.record.setAttribute('aria-pressed', 'false');
    const type = recorder.mimeType || 'audio/webm';
    const extension = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
    if (chunks.length) transcribe(new File(chunks, `recording.${extension}`, { type }));
  });
  recorder.start();
  els.record.textContent = 'Stop recording';
  els.record.setAttribute('aria-pressed', 'true');
  els.status.textContent = 'Recording… press Stop recording when you are done.';
}

async function transcribe(file) {
  if (busy) return;
  if (file.type && !file.type.startsWith('audio/') && !file.type.startsWith('video/')) {
    els.result.hidden = true;
    els.status.textContent = '';
    say(els.error, `“${file.name}” is not an audio file (${file.type}): choose a recording (wav, mp3, m4a, ogg, webm, flac).`);
    return;
  }
  busy = true;
  say(els.error, '');
  const translate = els.task.value === 'translate';
  els.name.textContent = `${file.name} · ${(file.size / 1024).toFixed(0)} KiB`;
  els.text.textContent = '';
  els.result.hidden = false;
  els.result.setAttribute('aria-busy', 'true');
  els.status.textContent = `${translate ? 'Translating' : 'Transcribing'} ${file.name}…`;
  const form = new FormData();
  form.append('file', file, file.name);
  if (els.model.value) form.append('model', els.model.value);
  const language = els.language.value.trim();
  if (language && !translate) form.append('language', language);
  if (!translate) form.append('stream', 'true');
  try {
    const route = translate ? '/v1/audio/translations' : '/v1/audio/transcriptions';
    const response = await api(route, { method: 'POST', body: form });
    if (translate) {
      els.text.textContent = (await response.json()).text;
    } else {
      for await (const event of sseEvents(response)) {
        if (event.error) throw new ApiError(event.error.message, { kind: 'stream' });
        if (event.type === 'transcript.text.delta') {
          els.text.textContent += event.delta;
          if (event.audio_duration) {
            const done = Math.min(100, (100 * event.audio_end) / event.audio_duration);
            els.status.textContent = `Transcribing ${file.name}… ${done.toFixed(0)}%`;
          }
        } else if (event.type === 'transcript.text.done') {
          els.text.textContent = event.text;
        }
      }
    }
    els.status.textContent = els.text.textContent ? 'Done.' : 'No speech was heard in this file.';
    els.result.hidden = !els.text.textContent;
  } catch (err) {
    els.result.hidden = true;
    els.status.textContent = '';
    if (err?.status === 400) {
      say(els.error, `“${file.name}” could not be transcribed: ${err.message.replace(/\.$/, '')}.`);
    } else if (err?.status !== 401) {
      say(els.error, err instanceof ApiError ? err.message : `Something went wrong: ${err}`);
    }
  } finally {
    busy = false;
    els.result.removeAttribute('aria-busy');
  }
}
