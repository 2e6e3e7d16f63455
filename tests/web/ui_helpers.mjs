// Helpers shared by the UI scenarios: step log, checks, screenshots, and one streamed chat turn.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const MODE = process.env.HEARTH_UI_MODE ?? 'fake';
export const ARTIFACTS = process.env.HEARTH_UI_ARTIFACTS ?? 'test-artifacts/web';
const started = Date.now();

mkdirSync(ARTIFACTS, { recursive: true });

export function log(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

export async function shot(page, name, options = {}) {
  const path = join(ARTIFACTS, `${MODE}-${name}.png`);
  await page.screenshot({ path, ...options });
  log(`screenshot ${path}`);
}

/** Send the composer's text and follow the answer: lengths seen at each DOM update, final state. */
export async function chatTurn(page, text, { stopAfterChars = null } = {}) {
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
  // The new answer is the last bubble (a resend takes the place of a failed turn's bubbles).
  const count = (await page.locator('#chat-log li.assistant').count()) - 1;
  const answer = page.locator('#chat-log li.assistant').nth(count);
  await answer.waitFor();
  // Watch the answer's text node from inside the page: every mutation is one DOM update.
  const watching = page.evaluate(
    ({ index, stopAfterChars }) =>
      new Promise((resolve) => {
        const item = document.querySelectorAll('#chat-log li.assistant')[index];
        const textEl = item.querySelector('.text');
        const lengths = [];
        let stopped = false;
        const done = () => {
          observer.disconnect();
          resolve({ lengths, state: item.dataset.state, text: textEl.textContent, meta: item.querySelector('.meta').textContent });
        };
        const observer = new MutationObserver(() => {
          const length = textEl.textContent.length;
          if (length !== lengths[lengths.length - 1]) lengths.push(length);
          if (stopAfterChars !== null && !stopped && length >= stopAfterChars) {
            stopped = true;
            document.getElementById('chat-stop').click();
          }
          if (item.dataset.state !== 'streaming') done();
        });
        observer.observe(item, { subtree: true, characterData: true, childList: true, attributes: true });
        if (item.dataset.state !== 'streaming') done();
      }),
    { index: count, stopAfterChars },
  );
  return { answer, result: await watching };
}

