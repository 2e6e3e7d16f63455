// The operator's path through the web UI (admin sign-in on loopback, a personal key, managing
// keys), and the page on a server without auth. Run by ui_driver.mjs in the "operator" and
// "noauth" modes.

import { chatTurn, check, log, shot } from './ui_helpers.mjs';

const storage = (page) => page.evaluate(() => ({ session: { ...sessionStorage }, local: { ...localStorage } }));

/** Everything the browser stores, as one string: to check that a secret is not in it. */
async function storedText(page) {
  const { session, local } = await storage(page);
  return JSON.stringify([session, local]);
}

async function operatorSignIn(page, adminKey, name) {
  await page.fill('#admin-key', adminKey);
  if (name !== null) await page.fill('#admin-key-name', name);
  await page.click('#admin-submit');
}

async function signOut(page) {
  await page.click('#sign-out');
  await page.locator('#signin').waitFor();
}

/** The key list's row for `name`, as {status, cells, revocable}. */
async function keyRow(page, name) {
  const row = page.locator(`#keys-table tbody tr[data-key="${name}"]`);
  await row.waitFor();
  return {
    status: await row.getAttribute('data-status'),
    cells: await row.locator('td').allTextContents(),
    revocable: (await row.locator('button', { hasText: 'Revoke' }).count()) > 0,
  };
}

async function revokeInList(page, name, confirmText) {
  const row = page.locator(`#keys-table tbody tr[data-key="${name}"]`);
  await row.locator('button', { hasText: 'Revoke' }).click();
  await row.locator('button', { hasText: confirmText }).click();
}

export async function operatorScenario(page, { URL, env }) {
  const adminKey = env.HEARTH_UI_ADMIN_KEY;
  const chatAuth = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/v1/chat/completions')) chatAuth.push(request.headers().authorization);
  });

  // 1. The sign-in page says how to get a key, in the banner's words, with a working copy button.
  await page.goto(URL);
  await page.locator('#signin').waitFor();
  await page.locator('#key-command', { hasText: 'keys create' }).waitFor();
  const command = await page.textContent('#key-command');
  check(command === env.HEARTH_UI_KEY_COMMAND, `the key command: ${command}`);
  check(await page.isVisible('#make-key-hint'), 'make key NAME=... is mentioned from a checkout');
  const where = await page.textContent('#admin-key-where');
  check(where.includes(env.HEARTH_UI_ADMIN_PLACE), `where the admin key is: ${where}`);
  await page.click('#key-command-copy');
  await page.locator('#key-command-copied', { hasText: 'Copied' }).waitFor();
  check((await page.evaluate(() => navigator.clipboard.readText())) === command, 'the copy button copies the command');
  const defaultName = await page.inputValue('#admin-key-name');
  check(/^playground-\d{8}-\d{4}$/.test(defaultName), `a default personal key name: ${defaultName}`);
  await shot(page, '01-signin', { fullPage: true });
  log(`sign-in page shows: ${command}`);

  // 2. A server that is not bound to loopback (simulated): no admin sign-in, and why; pasting stays.
  await page.route('**/ui/config', async (route) => {
    const response = await route.fetch();
    route.fulfill({ response, json: { ...(await response.json()), loopback: false } });
  });
  await page.reload();
  await page.locator('#admin-remote').waitFor();
  const why = await page.textContent('#admin-remote');
  check(!(await page.isVisible('#admin-form')), 'no admin sign-in off loopback');
  check(/must not travel/.test(why) && /paste it/.test(why), `explains why: ${why}`);
  check(await page.isVisible('#signin-form'), 'an operator can still paste a key');
  await shot(page, '02-signin-not-loopback', { fullPage: true });
  await page.unroute('**/ui/config');
  await page.reload();
  await page.locator('#admin-form').waitFor();
  log('off loopback: the admin sign-in is replaced by why');

  // 3. A wrong admin key is refused clearly, and nothing is stored.
  await operatorSignIn(page, 'not-the-admin-key', null);
  await page.locator('#admin-error', { hasText: 'admin key was not accepted (401' }).waitFor();
  check((await storedText(page)) === '[{},{}]', 'nothing stored after a refused admin key');

  // 4. The admin key mints a personal key; both stay in this tab's session storage only.
  await operatorSignIn(page, adminKey, 'operator-web');
  await page.locator('#tab-keys:not([hidden])').waitFor();
  await page.locator('#account-label', { hasText: 'Signed in as operator-web (operator)' }).waitFor();
  const { session, local } = await storage(page);
  const personal = session['hearth.apiKey'];
  check(/^hk-/.test(personal) && personal !== adminKey, 'the personal key is stored');
  check(session['hearth.adminKey'] === adminKey && Object.keys(session).length === 2, 'the admin key is kept for this tab');
  check(Object.keys(local).length === 0, 'nothing in localStorage');
  log('operator signed in with a personal key');
  // A reload stays signed in as operator, with the same personal key: no new key is made.
  await page.reload();
  await page.locator('#account-label', { hasText: 'Signed in as operator-web (operator)' }).waitFor();
  await page.locator('#tab-keys:not([hidden])').waitFor();
  check((await storage(page)).session['hearth.apiKey'] === personal, 'the reload kept the personal key');
  log('reload: still the operator');

  // 4b. Markdown in an answer is rendered, and markup in it stays text (a simulated stream).
  const markdown = 'The capital is **Paris**.\n\n- one\n- two\n\n```\n<b>not bold</b>\n```\n\nSee [the docs](https://example.com/docs).';
  await page.route('**/v1/chat/completions', (route) => route.fulfill({
    status: 200,
    headers: { 'content-type': 'text/event-stream' },
    body: `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: 'fake-chat', choices: [{ index: 0, delta: { content: markdown }, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`,
  }));
  const rendered = await chatTurn(page, 'markdown please');
  const last = page.locator('#chat-log li.message.assistant').last();
  check(rendered.result.state === 'done', `the simulated answer finished: ${rendered.result.state}`);
  check(await last.locator('.text strong', { hasText: 'Paris' }).count() === 1, 'bold is rendered');
  check(await last.locator('.text ul li').count() === 2, 'the list is rendered');
  check(await last.locator('.text pre code', { hasText: '<b>not bold</b>' }).count() === 1, 'code keeps markup as text');
  check(await last.locator('.text b').count() === 0, 'no markup from the answer reaches the page');
  const link = last.locator('.text a');
  check((await link.getAttribute('href')) === 'https://example.com/docs' && /noopener/.test(await link.getAttribute('rel')), 'a safe link');
  check(/^fake-chat · /.test(rendered.result.meta), `the answer says which model wrote it: ${rendered.result.meta}`);
  await page.unroute('**/v1/chat/completions');
  log('markdown rendered safely');

  // 4c. Structured output: the answer matches the schema in the settings, shown as indented JSON.
  await page.click('details.extras summary');
  await page.check('#chat-json');
  const structured = await chatTurn(page, 'Where is the Eiffel Tower?');
  const json = JSON.parse(await page.locator('#chat-log li.message.assistant').last().locator('.text pre code').textContent());
  check(structured.result.state === 'done' && typeof json.city === 'string' && typeof json.country === 'string',
    `an answer matching the schema: ${JSON.stringify(json)}`);
  await page.uncheck('#chat-json');
  // A sample tool the model must call: the call is shown with its arguments.
  await page.check('#chat-tool');
  const toolTurn = await chatTurn(page, 'What is the weather in Paris?');
  const called = await page.locator('#chat-log li.message.assistant').last().locator('.text').textContent();
  check(toolTurn.result.state === 'done' && /Calls a tool:\s*get_weather\(\{.*"city"/s.test(called), `a tool call: ${called}`);
  await page.uncheck('#chat-tool');
  log(`structured output and a tool call: ${called.replace(/\s+/g, ' ')}`);
  // Retry asks the last question again, in place of its turn.
  const bubbles = await page.locator('#chat-log li.message').count();
  const sentBefore = chatAuth.length;
  await page.locator('#chat-log li.message.assistant').last().locator('button.retry').click();
  await page.waitForFunction(() => document.querySelector('#chat-log li.message.assistant:last-child')?.dataset.state === 'done');
  await page.locator('#chat-log li.message.assistant').last().locator('button.retry').waitFor();
  check((await page.locator('#chat-log li.message').count()) === bubbles, 'the retried turn took the place of the old one');
  check(chatAuth.length === sentBefore + 1, 'Retry sent the question once more');
  check((await page.locator('#chat-log li.message.user').last().textContent()).includes('What is the weather in Paris?'), 'the same question');
  check(await page.locator('#chat-log button.retry').count() === 1, 'only the last answer offers Retry');
  log('retry replaced the last turn');

  // 5. The chat picks the default chat model, lists every model with its kind, and streams.
  check((await page.inputValue('#chat-model')) === 'fake-chat', `the default chat model: ${await page.inputValue('#chat-model')}`);
  const kinds = await page.$$eval('#model-list li', (items) => items.map((li) => `${li.dataset.model}: ${li.querySelector('.kind').textContent}`));
  for (const expected of ['fake-chat: chat, default', 'fake-other: chat', 'fake-embed: embeddings', 'fake-vision: image classification']) {
    check(kinds.includes(expected), `model kinds ${JSON.stringify(kinds)} include ${expected}`);
  }
  await page.fill('#chat-max-tokens', '20');
  const turn = await chatTurn(page, 'Hello from the operator.');
  const grew = turn.result.lengths;
  check(turn.result.state === 'done' && grew.length >= 3 && grew.at(-1) > 0, `a streamed answer: ${turn.result.state} ${grew}`);
  check(chatAuth.at(-1) === `Bearer ${personal}`, 'the chat uses the personal key, not the admin key');
  await shot(page, '03-chat');
  log(`streamed ${grew.length} updates: ${turn.result.meta}`);

  // 6. A 403 from the API is shown plainly (simulated: this key may use every model).
  await page.route('**/v1/chat/completions', (route) =>
    route.fulfill({
      status: 403,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ error: { message: "this API key may not use the model 'fake-chat'", type: 'permission_error', param: 'model', code: 'model_not_allowed' } }),
    }),
  );
  const denied = await chatTurn(page, 'may I?');
  check(/This key is not allowed to do that \(403: this API key may not use the model 'fake-chat'\)/.test(denied.result.meta), `403 message: ${denied.result.meta}`);
  await page.unroute('**/v1/chat/completions');

  // 7. The operator console: everyone's usage per key, model, family and variant.
  await page.click('#tab-keys');
  const mine = page.locator('#ops-usage-keys tbody tr[data-name="operator-web"]');
  for (let attempt = 0; attempt < 20 && !(await mine.count()); attempt += 1) {
    await page.waitForTimeout(300); // the ledger writes rows in batches
    await page.click('#ops-usage-refresh');
  }
  const usageCells = await mine.locator('td').allTextContents();
  check(Number(usageCells[0]) >= 1, `the operator's own key has requests: ${usageCells}`);
  check(await page.locator('#ops-usage-families tbody tr[data-name="openai"]').count() === 1, 'usage per API family');
  check(/requests · /.test(await page.textContent('#ops-usage-summary')), 'the totals line');
  // Models: unload one and load it again, on this replica.
  const embed = page.locator('#models-table tbody tr[data-model="fake-embed"]');
  await embed.locator('button', { hasText: 'Unload' }).click();
  await page.locator('#models-table tbody tr[data-model="fake-embed"] .status', { hasText: 'unloaded' }).waitFor();
  await page.locator('#models-table tbody tr[data-model="fake-embed"] button', { hasText: 'Load' }).click();
  await page.locator('#models-table tbody tr[data-model="fake-embed"] .status', { hasText: 'ready' }).waitFor();
  log('unloaded and loaded fake-embed');
  // Routes: create a canary, make it blue-green, switch it, delete it.
  await page.fill('#routes-alias', 'web-route');
  await page.selectOption('#routes-strategy', 'canary');
  await page.fill('#routes-variants', 'fake-chat=90, fake-other=10');
  await page.click('#routes-save');
  const routeRow = page.locator('#routes-table tbody tr[data-route="web-route"]');
  await routeRow.waitFor();
  check(/fake-chat 90%.*fake-other 10%/.test(await routeRow.textContent()), `the canary route: ${await routeRow.textContent()}`);
  check((await page.inputValue('#routes-alias')) === '', 'a saved route clears the form');
  await page.fill('#routes-alias', 'web-route');
  await page.fill('#routes-variants', 'fake-chat=oops');
  await page.click('#routes-save');
  await page.locator('#routes-form-error', { hasText: 'model=weight' }).waitFor();
  await routeRow.locator('button', { hasText: 'Edit' }).click();
  check((await page.inputValue('#routes-variants')) === 'fake-chat=90, fake-other=10', 'Edit fills the form');
  await page.selectOption('#routes-strategy', 'blue-green');
  await page.fill('#routes-variants', 'fake-chat=100, fake-other=0');
  await page.click('#routes-save');
  await page.locator('#routes-table tbody tr[data-route="web-route"] button', { hasText: 'Switch' }).click();
  await page.locator('#routes-status', { hasText: 'now goes to fake-other' }).waitFor();
  const switched = await (await fetch(`${URL}/admin/routes/web-route`, { headers: { Authorization: `Bearer ${adminKey}` } })).json();
  check(switched.strategy === 'blue-green' && switched.variants.find((v) => v.weight === 100).model === 'fake-other', `switched: ${JSON.stringify(switched)}`);
  await shot(page, '03b-operator-console', { fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  const consoleWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  check(consoleWidth <= 390, `the operator console fits a phone: ${consoleWidth} px`);
  await shot(page, '03c-operator-console-phone', { fullPage: true });
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.locator('#routes-table tbody tr[data-route="web-route"] button', { hasText: 'Delete' }).click();
  await page.locator('#routes-status', { hasText: 'Deleted “web-route”' }).waitFor();
  log('routes: created, changed, switched and deleted');

  // 7b. Keys: the list, with this tab's own key marked.
  const own = await keyRow(page, 'operator-web');
  check(own.status === 'active' && own.cells[0].includes('this tab'), `own key row: ${own.cells}`);
  // The models table beside the keys: a local model has one row, with its state.
  const modelRow = page.locator('#models-table tbody tr[data-model="fake-chat"]');
  await modelRow.waitFor();
  const modelCells = await modelRow.locator('td').allInnerTexts();
  check(modelCells[1] === 'fake' && modelCells[2] === 'ready' && modelCells[4] === 'local', `model row: ${modelCells}`);

  // 8. Create a key with limits: its secret is shown once, copied, then hidden for good.
  await page.fill('#keys-name', 'web-ui-alice');
  await page.check('#keys-models input[value="fake-chat"]');
  await page.fill('#keys-rpm', '7');
  await page.fill('#keys-monthly-tokens', '5000');
  await page.fill('#keys-expires-days', '30');
  await page.click('#keys-create');
  await page.locator('#keys-secret:not([hidden])').waitFor();
  const secret = await page.inputValue('#keys-secret-value');
  check(/^hk-/.test(secret), 'the new secret is shown');
  check(/cannot be shown again/.test(await page.textContent('#keys-secret')), 'says it is shown once');
  await page.click('#keys-secret-copy');
  await page.locator('#keys-secret-copied', { hasText: 'Copied' }).waitFor();
  check((await page.evaluate(() => navigator.clipboard.readText())) === secret, 'the copy button copies the secret');
  const alice = await keyRow(page, 'web-ui-alice');
  check(alice.status === 'active' && alice.cells[3] === 'fake-chat' && alice.cells[4] === '7' && alice.cells[7] === '5,000' && alice.cells[8] !== 'never',
    `the new key's limits: ${alice.cells}`);
  await shot(page, '04-keys-created', { fullPage: true });
  await page.click('#keys-secret-done');
  check(!(await page.isVisible('#keys-secret')) && (await page.inputValue('#keys-secret-value')) === '', 'the secret is gone');
  check(!(await storedText(page)).includes(secret), 'the new secret is not stored');
  const allowed = await fetch(`${URL}/v1/models`, { headers: { Authorization: `Bearer ${secret}` } });
  const visible = (await allowed.json()).data.map((m) => m.id);
  check(allowed.ok && visible.join() === 'fake-chat', `the new key works, for its models only: ${visible}`);
  log('created web-ui-alice with limits');

  // 9. A name that is taken gets a clear message.
  await page.fill('#keys-name', 'web-ui-alice');
  await page.click('#keys-create');
  await page.locator('#keys-form-error', { hasText: 'exists already' }).waitFor();

  // 9b. On a phone the keys page fits the screen, and asking to revoke does not scroll the
  // table sideways (the names stay in view).
  await page.setViewportSize({ width: 390, height: 844 });
  const pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  check(pageWidth <= 390, `the keys page fits a phone: ${pageWidth} px`);
  const aliceRow = page.locator('#keys-table tbody tr[data-key="web-ui-alice"]');
  const revokeButton = aliceRow.locator('button', { hasText: 'Revoke' });
  await revokeButton.scrollIntoViewIfNeeded(); // as a thumb would, to reach the last column
  const tableScroll = () => page.evaluate(() => document.querySelector('#panel-keys .table-wrap').scrollLeft);
  const before = await tableScroll();
  await revokeButton.click();
  const after = await tableScroll();
  check(after === before, `asking to revoke leaves the table where it was: ${before} then ${after} px`);
  await shot(page, '04b-keys-phone', { fullPage: true });
  await aliceRow.locator('button', { hasText: 'Cancel' }).click();
  await page.setViewportSize({ width: 1280, height: 860 });

  // 10. Revoke (with a second click to confirm): the key stops working, and says so at sign-in.
  await revokeInList(page, 'web-ui-alice', 'Yes, revoke');
  await page.locator('#keys-status', { hasText: 'Revoked “web-ui-alice”' }).waitFor();
  // Revoked keys are kept for the record but hidden, until asked for.
  check(await page.locator('#keys-table tbody tr[data-key="web-ui-alice"]').isHidden(), 'a revoked key is hidden');
  check(/1 revoked hidden/.test(await page.textContent('#keys-status')), 'the list says a revoked key is hidden');
  await page.check('#keys-show-revoked');
  const revokedRow = await keyRow(page, 'web-ui-alice');
  check(revokedRow.status === 'revoked' && !revokedRow.revocable, `revoked row: ${revokedRow.cells}`);
  const refused = await fetch(`${URL}/v1/models`, { headers: { Authorization: `Bearer ${secret}` } });
  check(refused.status === 401, `a revoked key gets 401: ${refused.status}`);
  await shot(page, '05-keys-revoked', { fullPage: true });
  await signOut(page);
  check((await storedText(page)) === '[{},{}]', 'sign-out forgets the personal key');
  await page.fill('#api-key', secret);
  await page.click('#signin-submit');
  // The refusal arrives after a round trip: wait for it rather than read the field at once.
  await page.locator('#signin-error', { hasText: 'not accepted' }).waitFor();
  const message = await page.locator('#signin-error').textContent();
  check(/not accepted \(401/.test(message) && /revoked/.test(message), `the revoked key's message: ${message}`);
  log(`revoked key refused: ${message}`);

  // 11. The admin key pasted as an API key gets a hint instead of a bare 401.
  await page.fill('#api-key', 'hk-admin-pasted-by-mistake');
  await page.click('#signin-submit');
  await page.locator('#signin-error', { hasText: 'looks like the admin key' }).waitFor();

  // 12. The personal key's name is taken: a clear message; then revoking one's own key signs out.
  await operatorSignIn(page, adminKey, 'operator-web');
  await page.locator('#admin-error', { hasText: 'exists already' }).waitFor();
  await operatorSignIn(page, adminKey, 'operator-web-2');
  await page.locator('#tab-keys:not([hidden])').waitFor();
  await page.click('#tab-keys');
  await revokeInList(page, 'operator-web-2', 'Revoke and sign out');
  await page.locator('#signin-info', { hasText: 'You revoked “operator-web-2”' }).waitFor();
  check((await storedText(page)) === '[{},{}]', 'nothing stored after revoking the own key');
  log('revoked own key: signed out');

  // 13. Sign-out forgets both keys: the reload after it shows the sign-in page.
  await operatorSignIn(page, adminKey, 'operator-web-3');
  await page.locator('#tab-keys:not([hidden])').waitFor();
  await signOut(page);
  check((await storedText(page)) === '[{},{}]', 'sign-out forgets the admin key too');
  await page.reload();
  await page.locator('#signin').waitFor();
  log('sign-out: both keys forgotten');
}

export async function noAuthScenario(page, { URL }) {
  await page.goto(URL);
  await page.locator('#tab-chat[aria-selected="true"]').waitFor();
  check(!(await page.isVisible('#signin')), 'no sign-in without auth');
  check(/no key needed/.test(await page.textContent('#account-label')), 'the top bar says no key is needed');
  const note = await page.textContent('#auth-off-note');
  check(await page.isVisible('#auth-off-note') && /--no-auth/.test(note), `the chat says why: ${note}`);
  check(!(await page.isVisible('#sign-out')) && !(await page.isVisible('#tab-keys')), 'no sign-out, no Keys tab');
  check((await page.inputValue('#chat-model')) === 'fake-chat', 'the default chat model is picked');
  await page.fill('#chat-max-tokens', '12');
  const turn = await chatTurn(page, 'Hello without a key.');
  check(turn.result.state === 'done' && turn.result.lengths.length >= 3, `a streamed answer: ${turn.result.state}`);
  check((await storedText(page)) === '[{},{}]', 'nothing stored');
  await shot(page, '01-chat');
  log(`no-auth chat: ${turn.result.meta}`);
}
