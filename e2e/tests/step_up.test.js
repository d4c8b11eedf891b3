// The step-up rule in a real browser: a session whose verification is older than the window
// (30 seconds here) is sent to verify again before it may remove a device, and comes back to
// the device list to do it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, screenshot, signUp, startServer, totp } from './support.js';

const STEP_UP_SECONDS = 30;

let server;
let browser;

before(async () => {
  server = await startServer({ OTP_STEP_UP_SECONDS: String(STEP_UP_SECONDS) });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const now = () => Date.now() / 1000;

test('a stale session verifies again before it removes a device', async () => {
  const page = await browser.newPage();
  await signUp(page, server.url, 'erin', 'a long enough password');
  await page.waitForURL(`${server.url}/`);
  await page.goto(`${server.url}/account/devices`);
  await page.locator('section.app-add', { hasText: 'Authenticator app' }).getByRole('button', { name: 'Set up' }).click();
  await page.waitForURL(/\/confirm$/);
  const secret = (await page.textContent('#app-secret')).replace(/\s+/g, '');
  const confirmedAt = now();
  await page.getByLabel('Code').fill(totp(secret, confirmedAt));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.waitForURL(/\/account\/devices(\?.*)?$/);

  // The first device verified the session; once the window has passed, removing it asks for
  // a new verification.
  await page.waitForTimeout((STEP_UP_SECONDS + 1) * 1_000);
  await page.goto(`${server.url}/account/devices`);
  assert.match(await page.textContent('body'), /You will be asked to verify it's you first/);
  await page.locator('summary', { hasText: 'Remove' }).first().click();
  await page.getByRole('button', { name: /^Remove / }).first().click();
  await page.waitForURL(/\/account\/verify\?next=\/account\/devices$/);
  assert.match(await page.textContent('[role=status]'), /need a recent verification/);
  await screenshot(page, '11-step-up-verify');

  // A code of a later time step than the confirmation's: that one is spent.
  await page.getByLabel('Code').fill(totp(secret, Math.max(confirmedAt + 30, now())));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(/\/account\/devices$/);
  assert.doesNotMatch(await page.textContent('body'), /You will be asked to verify it's you first/);
  await page.locator('summary', { hasText: 'Remove' }).first().click();
  await page.getByRole('button', { name: /^Remove / }).first().click();
  await page.waitForURL(/\/account\/devices\?done=removed$/);
  assert.match(await page.textContent('body'), /no two-factor device yet/);
  await page.close();
});
