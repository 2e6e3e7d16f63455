// Drives Hearth's web UI in the system's headless Chromium with playwright-core.
// Never downloads a browser: it launches /usr/bin/chromium (or $HEARTH_CHROMIUM).
//
// Environment (set by tests/web/test_web_ui.py):
//   HEARTH_UI_URL        the live server, e.g. http://127.0.0.1:8123
//   HEARTH_UI_MODE       "fake" (auth on, fake engines), "operator" (admin sign-in and keys, fake
//                        engines), "noauth" (--no-auth, fake engines) or "real" (--no-auth, real models)
//   HEARTH_UI_KEY        fake mode: a valid key;  HEARTH_UI_LIMITED_KEY: a key with a tiny rpm
//   HEARTH_UI_ADMIN_KEY  fake and operator modes: the admin key
//   HEARTH_UI_KEY_COMMAND, HEARTH_UI_ADMIN_PLACE  what the sign-in page must say (the banner's words)
//   HEARTH_UI_IMAGE      path of an image to classify (skimage's chelsea.png)
//   HEARTH_UI_AUDIO      real mode: a WAV of "The train to London leaves from platform number four."
//   HEARTH_UI_ARTIFACTS  where screenshots go
// Prints one line per step and exits non-zero with the reason on the first failure.

import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, MODE, chatTurn, check, log, shot } from './ui_helpers.mjs';
import { noAuthScenario, operatorScenario } from './ui_operator.mjs';

const env = process.env;
const URL = env.HEARTH_UI_URL;
const IMAGE = env.HEARTH_UI_IMAGE;
const AUDIO = env.HEARTH_UI_AUDIO;
const CHROMIUM = env.HEARTH_CHROMIUM ?? '/usr/bin/chromium';

async function statValue(page, label) {
  const stat = page.locator('#usage-stats .stat', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) });
  const text = await stat.locator('dd').evaluate((dd) => dd.firstChild.textContent);
  return Number(text.replace(/[^\d]/g, ''));
}

async function openUsage(page) {
  await page.click('#tab-usage');
  await page.locator('#usage-stats .stat').first().waitFor();
}

async function classifyFile(page, { viaDrop, topK }) {
  await page.click('#tab-classify');
  await page.selectOption('#classify-top-k', String(topK));
  if (viaDrop) {
    const b64 = readFileSync(IMAGE).toString('base64');
    const dataTransfer = await page.evaluateHandle(
      ({ b64, name }) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: 'image/png' }));
        return transfer;
      },
      { b64, name: basename(IMAGE) },
    );
    await page.dispatchEvent('#dropzone', 'dragover', { dataTransfer });
    await page.dispatchEvent('#dropzone', 'drop', { dataTransfer });
  } else {
    await page.setInputFiles('#classify-file', IMAGE);
  }
  await page.waitForFunction(
    () => document.querySelectorAll('#classify-bars li').length > 0 && !document.getElementById('classify-result').hasAttribute('aria-busy'),
    null,
    { timeout: 30_000 },
  );
  const bars = await page.$$eval('#classify-bars li', (items) =>
    items.map((li) => ({
      label: li.querySelector('.bar-label').textContent,
      value: li.querySelector('.bar-value').textContent,
      width: li.querySelector('.bar-fill').getBoundingClientRect().width,
    })),
  );
  const preview = await page.$eval('#classify-preview', (img) => img.complete && img.naturalWidth > 0);
  check(preview, 'the image preview is shown');
  // The fake classifier knows four labels, so top 5 may show four.
  check(bars.length === topK || (topK > 4 && bars.length === 4), `${topK} bars asked, ${bars.length} shown`);
  check(bars.every((b) => b.label && /%$/.test(b.value)), `bars have labels and percentages: ${JSON.stringify(bars)}`);
  check(bars[0].width > 20, `the top bar has a visible width: ${bars[0].width}`);
  return bars;
}

async function fakeScenario(page) {
  const requests = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/v1/chat/completions')) requests.push(JSON.parse(request.postData()));
  });
  const aborted = [];
  page.on('requestfailed', (request) => {
    if (request.url().endsWith('/v1/chat/completions')) aborted.push(request.failure()?.errorText);
  });

  // 1. Sign in: a wrong key gets a clear 401 message, the right one opens the app.
  await page.goto(URL);
  await page.locator('#signin').waitFor();
  await page.locator('#key-command', { hasText: 'keys create' }).waitFor();
  const command = await page.textContent('#key-command');
  check(command === env.HEARTH_UI_KEY_COMMAND, `the sign-in page shows the banner's key command: ${command}`);
  check(/HEARTH_ADMIN_KEY/.test(await page.textContent('#admin-key-where')), 'says where the admin key is');
  check(await page.isVisible('#admin-form'), 'operator sign-in is offered on loopback');
  await shot(page, '01-signin', { fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  check((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390, 'the sign-in page fits a phone');
  await shot(page, '01b-signin-phone', { fullPage: true });
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.fill('#api-key', 'hk-not-a-real-key');
  await page.click('#signin-submit');
  const error = page.locator('#signin-error');
  await error.waitFor();
  const errorText = await error.textContent();
  check(/not accepted/.test(errorText) && /401/.test(errorText), `401 message: ${errorText}`);
  check((await page.evaluate(() => sessionStorage.length)) === 0, 'a refused key is not stored');
  await shot(page, '02-signin-error');
  await page.fill('#api-key', env.HEARTH_UI_KEY);
  await page.click('#signin-submit');
  await page.locator('#tab-chat[aria-selected="true"]').waitFor();
  await page.locator('#account-label', { hasText: 'Signed in as web-ui' }).waitFor();
  const contrast = await page.evaluate(() => {
    const luminance = (color) => {
      const [r, g, b] = color.match(/\d+/g).slice(0, 3).map((v) => {
        const c = Number(v) / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const tab = document.querySelector('#tabs [aria-selected="true"]');
    const style = getComputedStyle(tab);
    const [fg, bg] = [luminance(style.color), luminance(style.backgroundColor)];
    return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  });
  check(contrast >= 4.5, `the selected tab's text contrast meets WCAG AA: ${contrast.toFixed(2)}:1`);
  const focused = await page.evaluate(() => document.activeElement?.id);
  check(focused === 'chat-input', `after sign-in the message box has the focus: ${focused}`);
  const stored = await page.evaluate(() => ({ session: { ...sessionStorage }, local: localStorage.length }));
  check(Object.values(stored.session).includes(env.HEARTH_UI_KEY) && stored.local === 0, 'the key is kept in sessionStorage only');
  log('signed in');

  // 2a. A usage page that cannot load shows its error alone, never empty cards under it.
  await page.route('**/v1/usage', (route) =>
    route.fulfill({ status: 503, contentType: 'application/json', headers: { 'retry-after': '2' },
      body: JSON.stringify({ error: { message: 'the server is busy', type: 'server_error', code: 'overloaded' } }) }));
  await page.click('#tab-usage');
  await page.locator('#usage-error', { hasText: 'busy' }).waitFor();
  check(!(await page.isVisible('#usage-body')), 'no empty cards under the error');
  await shot(page, '02b-usage-error');
  await page.unroute('**/v1/usage');
  await page.click('#usage-refresh');

  // 2. The dashboard before chatting, for the request count to compare with later.
  await openUsage(page);
  const requestsBefore = await statValue(page, 'Requests');
  log(`requests before chatting: ${requestsBefore}`);

  // 3. A streamed answer grows over several DOM updates and ends with its usage line.
  await page.click('#tab-chat');
  const models = await page.$$eval('#chat-model option', (options) => options.map((o) => o.value));
  check(models.includes('fake-chat') && !models.includes('fake-vision'), `chat models only: ${models}`);
  await page.selectOption('#chat-model', 'fake-chat');
  // Temperature starts blank: the model's own default, named in the placeholder.
  check((await page.inputValue('#chat-temperature')) === '', 'temperature starts blank');
  await page.waitForFunction(() => /default/.test(document.getElementById('chat-temperature').placeholder));
  await page.fill('#chat-system', 'You are a terse assistant.');
  await page.fill('#chat-temperature', '0.5');
  await page.fill('#chat-max-tokens', '30');
  await page.press('#chat-max-tokens', 'Enter'); // must not submit the settings form
  const first = await chatTurn(page, 'Tell me about foxes.');
  const grow = first.result.lengths;
  log(`first answer: ${grow.length} DOM updates, lengths ${grow.slice(0, 6).join(',')}…${grow.at(-1)}`);
  check(first.result.state === 'done', `answer finished: ${first.result.state}`);
  check(grow.length >= 5 && grow.every((n, i) => i === 0 || n > grow[i - 1]), `text grew over time: ${grow}`);
  check(/\d+ prompt \+ 30 completion = \d+ tokens/.test(first.result.meta), `usage line: ${first.result.meta}`);
  const announced = await page.textContent('#chat-announce');
  check(announced.trim() === first.result.text.trim(), `the finished answer is announced once, whole: ${announced}`);
  check(/first token after [\d.]+ s/.test(first.result.meta), `the wait is shown apart from the speed: ${first.result.meta}`);
  const body = requests[0];
  check(body.stream === true && body.stream_options?.include_usage === true, 'streams with include_usage');
  check(body.temperature === 0.5 && body.max_tokens === 30 && body.model === 'fake-chat', `sampling fields: ${JSON.stringify(body)}`);
  check(body.messages[0].role === 'system' && body.messages.length === 2, 'the system prompt goes first');
  await shot(page, '03-chat');

  // 4. Stop: a long answer stops growing, and the request is aborted (the server cancels it).
  await page.fill('#chat-max-tokens', '1500');
  const second = await chatTurn(page, 'Now write a very long story.', { stopAfterChars: 40 });
  check(second.result.state === 'stopped', `stopped state: ${second.result.state}`);
  const lengthAtStop = (await second.answer.locator('.text').textContent()).length;
  await page.waitForTimeout(800);
  const lengthLater = (await second.answer.locator('.text').textContent()).length;
  check(lengthAtStop === lengthLater && lengthAtStop >= 40 && lengthAtStop < 400, `stopped growing: ${lengthAtStop} then ${lengthLater}`);
  check(await page.isVisible('#chat-send') && !(await page.isVisible('#chat-stop')), 'Send is back, Stop is gone');
  check(aborted.length === 1, `the browser aborted the streaming request: ${aborted}`);
  const history = requests[1].messages.map((m) => m.role).join(',');
  check(history === 'system,user,assistant,user', `the conversation is sent each turn: ${history}`);
  check(requests[1].messages[2].content.trim() === first.result.text.trim(), 'the first answer is in the history');
  log(`stopped at ${lengthAtStop} characters: ${second.result.meta}`);
  await shot(page, '04-chat-stopped');

  // 4b. A generation that fails mid-stream ends with the server's error event, shown in the turn.
  await page.fill('#chat-max-tokens', '20');
  await page.fill('#chat-temperature', ''); // back to the model's default: none is sent
  const failing = await chatTurn(page, 'please FAIL_MIDSTREAM now');
  check(failing.result.state === 'error' && /failed mid-answer/.test(failing.result.meta), `mid-stream error: ${failing.result.meta}`);
  check(!('temperature' in requests[2]), `a blank temperature is not sent: ${JSON.stringify(requests[2])}`);
  log(`mid-stream error shown: ${failing.result.meta}`);

  // 5. Classify chelsea.png through the file picker, then by drag and drop.
  const picked = await classifyFile(page, { viaDrop: false, topK: 5 });
  log(`file picker: ${picked.map((b) => `${b.label} ${b.value}`).join(', ')}`);
  const dropped = await classifyFile(page, { viaDrop: true, topK: 3 });
  check(dropped[0].label === picked[0].label, 'the same image gets the same top label');
  await shot(page, '05-classify');
  // A file that is not an image takes the last result off the screen and says what to do.
  await page.setInputFiles('#classify-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await page.locator('#classify-error', { hasText: 'notes.txt' }).waitFor();
  check(!(await page.isVisible('#classify-result')), 'a rejected file leaves no earlier result on screen');
  // One that claims to be an image and is not: the server's refusal, in plain words.
  await page.setInputFiles('#classify-file', { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('not a png at all') });
  await page.locator('#classify-error', { hasText: 'could not be read as an image' }).waitFor();
  check(!(await page.isVisible('#classify-result')), 'a broken image leaves no result on screen');
  log(`broken image: ${await page.textContent('#classify-error')}`);

  // 5b. A batch job of this key's, submitted through the API, is listed with its counts.
  const auth = { Authorization: `Bearer ${env.HEARTH_UI_KEY}` };
  const line = {
    custom_id: 'ui-1', method: 'POST', url: '/v1/chat/completions',
    body: { model: 'fake-chat', max_tokens: 2, messages: [{ role: 'user', content: 'hello' }] },
  };
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([`${JSON.stringify(line)}\n`]), 'ui.jsonl');
  const uploaded = await (await fetch(`${URL}/v1/files`, { method: 'POST', headers: auth, body: form })).json();
  const made = await (await fetch(`${URL}/v1/batches`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ input_file_id: uploaded.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
  })).json();
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const state = await (await fetch(`${URL}/v1/batches/${made.id}`, { headers: auth })).json();
    if (state.status === 'completed') break;
    await page.waitForTimeout(100);
  }

  // 6. The dashboard counts the new requests (the ledger is written in batches: refresh until then).
  await openUsage(page);
  const batchRow = page.locator(`#usage-batches tbody tr[data-batch="${made.id}"]`);
  await batchRow.waitFor();
  const batchCells = await batchRow.locator('td').allTextContents();
  check(batchCells[2] === 'completed' && batchCells[3] === '1' && batchCells[5] === '1', `the batch job's row: ${batchCells}`);
  let requestsAfter = 0;
  for (let attempt = 0; attempt < 20; attempt += 1) {
    requestsAfter = await statValue(page, 'Requests');
    if (requestsAfter >= requestsBefore + 4) break;
    await page.waitForTimeout(500);
    await page.click('#usage-refresh');
    await page.waitForFunction(() => !document.getElementById('usage-refresh').disabled);
  }
  check(requestsAfter >= requestsBefore + 4, `requests went from ${requestsBefore} to ${requestsAfter}`);
  const rows = await page.$$eval('#usage-models tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  const chatRow = rows.find((r) => r[0] === 'fake-chat');
  check(chatRow && Number(chatRow[1]) >= 2, `per-model row for fake-chat: ${JSON.stringify(rows)}`);
  check(rows.some((r) => r[0] === 'fake-vision'), 'per-model row for fake-vision');
  const bars = await page.$$eval('#chart-requests rect.bar', (rects) => rects.filter((r) => Number(r.getAttribute('height')) > 0).length);
  check(bars >= 1, 'the requests chart has a bar for today');
  const limits = await page.textContent('#usage-limits');
  check(/left this minute/.test(limits), `remaining rate limit from the headers: ${limits}`);
  const budget = await page.textContent('#usage-budget');
  check(/tokens left of 1,000,000 this month/.test(budget), `budget: ${budget}`);
  const latency = await statValue(page, 'p95 latency');
  check(latency > 0, 'p95 latency shown');
  log(`dashboard: ${requestsAfter} requests; limits "${limits.replace(/\s+/g, ' ')}"`);
  // Recent requests one by one (a failed one says its status) and today by the hour.
  const recent = await page.$$eval('#usage-recent tbody tr', (rows) => rows.map((r) => Number(r.dataset.status)));
  check(recent.length >= 3 && recent.some((s) => s >= 400) && recent.some((s) => s === 200), `recent requests: ${recent}`);
  check(await page.locator('#chart-hours svg rect.bar').count() >= 1, 'today by the hour is drawn');
  check(/requests per hour/.test(await page.getAttribute('#chart-hours svg', 'aria-label')), 'the hourly chart says what it shows');
  const errorsColumn = await page.$$eval('#usage-models tbody tr', (rows) => rows.map((r) => r.lastElementChild.textContent));
  check(errorsColumn.length >= 1 && errorsColumn.every((t) => /^\d+$/.test(t)), `errors per model: ${errorsColumn}`);
  await shot(page, '06-usage', { fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, '06-usage-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // 7. Small screens: every page stacks its columns and fits the width (no sideways scroll).
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('#tab-chat');
  await shot(page, '07-mobile-chat', { fullPage: true });
  for (const tab of ['classify', 'speech', 'usage']) {
    await page.click(`#tab-${tab}`);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `the ${tab} page fits a phone: ${width} px`);
    await shot(page, `07-mobile-${tab}`, { fullPage: true });
  }
  await page.click('#tab-chat');
  await page.setViewportSize({ width: 1280, height: 860 });

  // 8. Sign out forgets the key.
  await page.click('#sign-out');
  await page.locator('#signin').waitFor();
  check((await page.evaluate(() => sessionStorage.length)) === 0, 'sign-out clears sessionStorage');
  check(!(await page.isVisible('#tabs')), 'the app is hidden after sign-out');
  check((await page.inputValue('#chat-system')) === '', 'sign-out resets the chat settings');
  log('signed out');

  // 9. A key with a tiny rpm: the refused turn explains the 429 and when to retry.
  await page.fill('#api-key', env.HEARTH_UI_LIMITED_KEY);
  await page.click('#signin-submit');
  await page.locator('#tab-chat[aria-selected="true"]').waitFor();
  await page.fill('#chat-max-tokens', '5');
  let refused = null;
  for (let i = 0; i < 4 && !refused; i += 1) {
    const turn = await chatTurn(page, `hello ${i}`);
    if (turn.result.state === 'error') refused = turn.result.meta;
  }
  check(refused && /Rate limit reached \(429/.test(refused) && /Try again in \d+ s/.test(refused), `429 message: ${refused}`);
  check((await page.inputValue('#chat-input')).startsWith('hello'), 'the refused message is given back to retry');
  // Sending it again (still refused) replaces the failed turn instead of adding a second one.
  const usersBefore = await page.locator('#chat-log li.user').count();
  await page.press('#chat-input', 'Enter');
  await page.waitForFunction(() => {
    const answers = document.querySelectorAll('#chat-log li.assistant');
    const last = answers[answers.length - 1];
    return last && last.dataset.state === 'error' && !last.hasAttribute('aria-busy');
  });
  const usersAfter = await page.locator('#chat-log li.user').count();
  check(usersAfter === usersBefore, `a resent failed turn is not duplicated: ${usersBefore} then ${usersAfter}`);
  log(`429 shown: ${refused}`);
  await shot(page, '08-rate-limited');

  // 10. A 5xx and a network failure (simulated in the browser) get their own plain messages.
  await page.route('**/v1/chat/completions', (route) =>
    route.fulfill({
      status: 503,
      headers: { 'content-type': 'application/json', 'retry-after': '2' },
      body: JSON.stringify({ error: { message: 'the server is busy', type: 'server_error', param: null, code: 'server_overloaded' } }),
    }),
  );
  const busy = await chatTurn(page, 'are you there?');
  check(/The server could not answer \(503: the server is busy\)\. Try again in 2 s\./.test(busy.result.meta), `503 message: ${busy.result.meta}`);
  await page.unroute('**/v1/chat/completions');
  await page.route('**/v1/chat/completions', (route) => route.abort('connectionrefused'));
  const offline = await chatTurn(page, 'are you there?');
  check(/Could not reach the Hearth server/.test(offline.result.meta), `network message: ${offline.result.meta}`);
  await page.unroute('**/v1/chat/completions');
  log(`5xx and network errors shown`);

  // 11. A key revoked mid-session: the next request signs the user out with a clear message.
  const revoked = await fetch(`${URL}/admin/keys/web-ui-limited/revoke`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.HEARTH_UI_ADMIN_KEY}` },
  });
  check(revoked.ok, `revoked the key: ${revoked.status}`);
  await page.click('#tab-usage');
  await page.locator('#signin-error', { hasText: 'revoked' }).waitFor();
  check((await page.evaluate(() => sessionStorage.length)) === 0, 'a refused key is forgotten');
  log(`revoked key: ${await page.textContent('#signin-error')}`);
}

async function realScenario(page) {
  // No keys on this server: the UI skips sign-in.
  await page.goto(URL);
  await page.locator('#tab-chat[aria-selected="true"]').waitFor();
  check(!(await page.isVisible('#signin')), 'no sign-in without auth');
  check(/no key needed/i.test(await page.textContent('#account-label')), 'says no key is needed');
  const chatModel = await page.inputValue('#chat-model');
  check(chatModel === 'smollm2-135m-instruct', `the default chat model is picked: ${chatModel}`);
  const picker = await page.evaluate(() => {
    const select = document.getElementById('chat-model');
    const context = document.createElement('canvas').getContext('2d');
    context.font = getComputedStyle(select).font;
    const padding = parseFloat(getComputedStyle(select).paddingLeft) + parseFloat(getComputedStyle(select).paddingRight);
    return { text: context.measureText(select.selectedOptions[0].text).width + padding + 24, box: select.clientWidth };
  });
  log(`model picker: text ${picker.text.toFixed(0)} px in a ${picker.box} px box`);
  check(picker.text <= picker.box, `the picked model's name fits its picker at 1280 px: ${JSON.stringify(picker)}`);
  check(!(await page.isVisible('#sign-out')), 'no sign-out without keys');

  const bars = await classifyFile(page, { viaDrop: false, topK: 5 });
  log(`real classify: ${bars.map((b) => `${b.label} ${b.value}`).join(', ')}`);
  check(/cat|tabby/i.test(bars[0].label), `a cat label on top: ${bars[0].label}`);
  await shot(page, '01-classify');

  await page.click('#tab-chat');
  await page.fill('#chat-max-tokens', '24');
  // Nothing but the question: the first answer must be the API's (the model's own sampling).
  await page.waitForFunction(() => /default: 0/.test(document.getElementById('chat-temperature').placeholder));
  log(`temperature placeholder: ${await page.getAttribute('#chat-temperature', 'placeholder')}`);
  const turn = await chatTurn(page, 'What is the capital of France?');
  check(/^smollm2-135m-instruct · /.test(turn.result.meta), `the answer names its model: ${turn.result.meta}`);
  log(`real chat (${turn.result.lengths.length} DOM updates): ${JSON.stringify(turn.result.text)} | ${turn.result.meta}`);
  check(turn.result.state === 'done' && /Paris/.test(turn.result.text), `a sensible first answer: ${turn.result.text}`);
  check(/first token after [\d.]+ s/.test(turn.result.meta), `wait and speed apart: ${turn.result.meta}`);
  check(/\d+ prompt \+ \d+ completion = \d+ tokens/.test(turn.result.meta), `usage line: ${turn.result.meta}`);
  await shot(page, '02-chat');

  // An attached photo goes as an OpenAI image_url part; the default model reads it through the
  // image classifier's labels, and the photo shows in the question's bubble.
  const sentBodies = [];
  const listen = (request) => {
    if (request.url().endsWith('/v1/chat/completions')) sentBodies.push(request.postDataJSON());
  };
  page.on('request', listen);
  await page.setInputFiles('#chat-attach', IMAGE);
  await page.locator('#chat-attachment img').waitFor();
  const pictured = await chatTurn(page, 'What animal is in this picture?');
  page.off('request', listen);
  const parts = sentBodies.at(-1).messages.at(-1).content;
  check(Array.isArray(parts) && parts[1].type === 'image_url' && parts[1].image_url.url.startsWith('data:image/png;base64,'), 'the image is sent as a content part');
  check(await page.locator('#chat-log li.message.user').last().locator('img.attached').count() === 1, 'the photo shows in the question');
  check(!(await page.isVisible('#chat-attachment')), 'the attachment goes with that one message');
  log(`answer about the photo: ${JSON.stringify(pictured.result.text)} | ${pictured.result.meta}`);
  check(pictured.result.state === 'done', `the photo turn finished: ${pictured.result.meta}`);
  await shot(page, '02b-chat-photo');

  await page.click('#tab-usage');
  await page.locator('#usage-error', { hasText: 'runs without keys' }).waitFor();
  log('usage explains that there are no keys');

  await speechScenario(page);
}

async function speechScenario(page) {
  // An uploaded recording streams its transcript in; Whisper loads on this first use.
  await page.click('#tab-speech');
  check((await page.inputValue('#speech-model')) === 'whisper-base', 'the speech model is offered');
  await page.setInputFiles('#speech-file', AUDIO);
  await page.locator('#speech-status', { hasText: 'Done.' }).waitFor({ timeout: 90_000 });
  const heard = await page.textContent('#speech-text');
  log(`uploaded speech: ${JSON.stringify(heard)}`);
  check(/platform/i.test(heard) && /london/i.test(heard), `the transcript is what was said: ${heard}`);
  await shot(page, '03-speech');
  // Translation to English comes back whole.
  await page.selectOption('#speech-task', 'translate');
  await page.setInputFiles('#speech-file', AUDIO);
  await page.locator('#speech-status', { hasText: 'Done.' }).waitFor({ timeout: 60_000 });
  check(/platform/i.test(await page.textContent('#speech-text')), 'the English translation is shown');
  await page.selectOption('#speech-task', 'transcribe');
  // A file that is not audio: said at once, the last transcript taken off the screen.
  await page.setInputFiles('#speech-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await page.locator('#speech-error', { hasText: 'notes.txt' }).waitFor();
  check(!(await page.isVisible('#speech-result')), 'a rejected file leaves no transcript on screen');
  // One that claims to be audio and is not: the server's refusal, in plain words.
  await page.setInputFiles('#speech-file', { name: 'broken.wav', mimeType: 'audio/wav', buffer: Buffer.from('not audio') });
  await page.locator('#speech-error', { hasText: 'could not be decoded as audio' }).waitFor();
  log(`broken audio: ${await page.textContent('#speech-error')}`);
  // Recording: Chromium's fake microphone (a beeping tone) for two seconds, sent when stopped.
  const sent = page.waitForResponse((r) => r.url().endsWith('/v1/audio/transcriptions'), { timeout: 60_000 });
  await page.click('#speech-record');
  await page.locator('#speech-record[aria-pressed="true"]').waitFor();
  await page.waitForTimeout(2000);
  await page.click('#speech-record');
  const answered = await sent;
  check(answered.status() === 200, `the recording is uploaded and decoded: ${answered.status()}`);
  await page.locator('#speech-status', { hasText: /Done\.|No speech was heard/ }).waitFor({ timeout: 60_000 });
  log(`recorded: ${await page.textContent('#speech-status')}`);
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, '04-speech-phone');
  await page.setViewportSize({ width: 1280, height: 860 });
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    // A fake microphone (a tone) that needs no permission prompt: the speech panel records it.
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
  ],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (message) => {
    // The browser itself logs refused requests (401, 429, aborted); the app logs nothing.
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  const scenarios = { fake: fakeScenario, real: realScenario, operator: operatorScenario, noauth: noAuthScenario };
  await scenarios[MODE](page, { URL, env });
  check(problems.length === 0, `no errors in the page: ${problems.join(' | ')}`);
  log(`${MODE} UI scenario passed`);
} catch (err) {
  failed = true;
  console.error(err.stack ?? String(err));
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages.length) await pages[0].screenshot({ path: join(ARTIFACTS, `${MODE}-failure.png`), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
