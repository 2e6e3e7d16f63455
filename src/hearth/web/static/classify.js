// Image classification: drag and drop or pick a file, see a preview and the top-k bars.

import { ApiError, api } from './api.js';
import { $, h, say } from './dom.js';

const els = {};
let previewUrl = null;
let busy = false;

export function initClassify() {
  for (const id of ['classify-model', 'classify-top-k', 'classify-file', 'classify-status', 'classify-error',
    'classify-result', 'classify-preview', 'classify-name', 'classify-bars', 'classify-model-used']) {
    els[id.replace('classify-', '')] = $(id);
  }
  els.zone = $('dropzone');
  els.file.addEventListener('change', () => {
    if (els.file.files.length) classify(els.file.files[0]);
    els.file.value = ''; // choosing the same file again still fires change
  });
  els.zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    els.zone.classList.add('dragging');
  });
  els.zone.addEventListener('dragleave', () => els.zone.classList.remove('dragging'));
  els.zone.addEventListener('drop', (event) => {
    event.preventDefault();
    els.zone.classList.remove('dragging');
    const file = event.dataTransfer.files[0];
    if (file) classify(file);
  });
  // A file dropped beside the zone must not make the browser navigate away from the app.
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (event) => event.preventDefault());
}

export function setClassifyModels(models) {
  const vision = models.filter((m) => m.kind === 'image-classification');
  const previous = els.model.value;
  els.model.replaceChildren(...vision.map((m) => h('option', { value: m.id, text: m.id })));
  if (vision.some((m) => m.id === previous)) els.model.value = previous;
  els.model.disabled = vision.length === 0;
  els.file.disabled = vision.length === 0;
  say(els.error, vision.length === 0 ? 'No image-classification model is available to this key.' : '');
}

export function resetClassify() {
  els.result.hidden = true;
  els.bars.replaceChildren();
  say(els.error, '');
  els.status.textContent = '';
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  els.preview.removeAttribute('src');
}

function renderPredictions(predictions) {
  els.bars.replaceChildren(
    ...predictions.map((p) => {
      const percent = Math.max(0, Math.min(100, Number(p.confidence) * 100));
      const fill = h('div', { class: 'bar-fill' });
      fill.style.width = `${percent}%`;
      return h(
        'li',
        { class: 'bar' },
        h('div', { class: 'bar-head' },
          h('span', { class: 'bar-label', text: p.label }),
          h('span', { class: 'bar-value', text: `${percent.toFixed(1)}%` })),
        h('div', { class: 'bar-track', 'aria-hidden': 'true' }, fill),
      );
    }),
  );
}

async function classify(file) {
  if (busy) return;
  if (file.type && !file.type.startsWith('image/')) {
    // The result on screen was another file's: it goes with the new attempt.
    els.result.hidden = true;
    els.status.textContent = '';
    say(els.error, `“${file.name}” is not an image (${file.type}): choose a photo or picture file.`);
    return;
  }
  say(els.error, '');
  busy = true;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  els.preview.src = previewUrl;
  els.name.textContent = `${file.name} · ${(file.size / 1024).toFixed(0)} KiB`;
  els.bars.replaceChildren();
  els['model-used'].textContent = '';
  els.result.hidden = false;
  els.result.setAttribute('aria-busy', 'true');
  els.status.textContent = `Classifying ${file.name}…`;

  const form = new FormData();
  form.append('image', file, file.name);
  if (els.model.value) form.append('model', els.model.value);
  form.append('top_k', els['top-k'].value);
  try {
    const response = await api('/v1/classify', { method: 'POST', body: form });
    const result = await response.json();
    renderPredictions(result.predictions ?? []);
    els['model-used'].textContent = `· ${result.model}`;
    const top = result.predictions?.[0];
    els.status.textContent = top ? `Most likely: ${top.label} (${(top.confidence * 100).toFixed(1)}%).` : 'No predictions.';
  } catch (err) {
    els.result.hidden = true;
    els.status.textContent = '';
    // A 401 has signed the user out already; its message is on the sign-in form.
    if (err?.status === 400) {
      say(els.error, `“${file.name}” could not be read as an image (${err.message.replace(/\.$/, '')}). Try a JPEG, PNG, GIF or WebP file.`);
    } else if (err?.status !== 401) {
      say(els.error, err instanceof ApiError ? err.message : `Something went wrong: ${err}`);
    }
  } finally {
    busy = false;
    els.result.removeAttribute('aria-busy');
  }
}
