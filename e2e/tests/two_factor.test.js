// The main flows in a real browser: enrol an authenticator app by reading the secret shown on
// the page, log in with two factors, use a backup code, and the admin refused until the staff
// session is verified, then allowed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseDevice, launchBrowser, logIn, logOut, screenshot, signUp, startServer, totp } from './support.js';

let server;
let browser;

// A failure throttles the next try for this many seconds: long enough that the browser's next
// try surely comes within it, even on a loaded machine.
const THROTTLE_SECONDS = 5;

before(async () => {
  server = await startServer({ OTP_TOTP_THROTTLE_FACTOR: String(THROTTLE_SECONDS) });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const now = () => Date.now() / 1000;

/** A six-digit code that is none of the codes the server accepts around now. */
function wrongCode(secret) {
  const near = new Set([-60, -30, 0, 30, 60].map((offset) => totp(secret, now() + offset)));
  for (let n = 0; ; n += 1) {
    const code = String(n).padStart(6, '0');
    if (!near.has(code)) return code;
  }
}

/** Waits for the page to show an alert matching `pattern` (after the navigation a click started). */
async function alert(page, pattern) {
  await page.locator('[role=alert]', { hasText: pattern }).waitFor();
}

test('enrol an authenticator app, log in with two factors, then with a backup code', async () => {
  const page = await browser.newPage();
  await signUp(page, server.url, 'dana', 'a long enough password');
  await page.waitForURL(`${server.url}/`);

  await page.getByRole('link', { name: 'Add a two-factor device' }).click();
  await page.waitForURL(/\/account\/devices(\?.*)?$/);
  await page.locator('section.app-add', { hasText: 'Authenticator app' }).getByRole('button', { name: 'Set up' }).click();
  await page.waitForURL(/\/confirm$/);
  // The QR code is an image served by the app itself, never by a third party.
  const qr = await page.locator('img').first().getAttribute('src');
  assert.ok(qr.startsWith('/') && qr.endsWith('qr.svg'), qr);
  await screenshot(page, '04-enrol-totp');
  const secret = (await page.textContent('#app-secret')).replace(/\s+/g, '');
  assert.match(secret, /^[A-Z2-7]{32}$/);

  await page.getByLabel('Code').fill(wrongCode(secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await alert(page, /Invalid token/);
  // Throttling: the next try, even with the right code, must wait after a failure.
  await page.getByLabel('Code').fill(totp(secret, now()));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await alert(page, /temporarily disabled/);
  await page.waitForTimeout(THROTTLE_SECONDS * 1_000 + 100);
  // The server may check this code in the next time step, and then learns a drift of one step
  // back: the login below takes that into account.
  const confirmedAt = now();
  await page.getByLabel('Code').fill(totp(secret, confirmedAt));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.waitForURL(/\/account\/devices(\?.*)?$/);

  await page.locator('section.app-add', { hasText: 'Backup codes' }).getByRole('button', { name: 'Generate codes' }).click();
  const codes = await page.locator('li code').allTextContents();
  assert.equal(codes.length, 10);
  await screenshot(page, '05-backup-codes');
  await page.goto(`${server.url}/account/devices`);
  await screenshot(page, '06-devices');

  // Two factors: the password, then a code of a later step than the confirmation's, which is
  // spent (the step after it, or the current one when that is later: both are in the window
  // whether the server learned a drift or not).
  await logOut(page);
  await logIn(page, server.url, 'dana', 'a long enough password');
  await page.waitForURL(/\/account\/login\/otp/);
  await screenshot(page, '07-login-second-factor');
  await chooseDevice(page, /authenticator/i);
  await page.getByLabel('Code').fill(totp(secret, Math.max(confirmedAt + 30, now())));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${server.url}/`);
  assert.match(await page.textContent('[role=status]'), /verified/);
  await screenshot(page, '08-home-verified');

  // A backup code works once.
  await logOut(page);
  await logIn(page, server.url, 'dana', 'a long enough password');
  await page.waitForURL(/\/account\/login\/otp/);
  await chooseDevice(page, /backup/i);
  await page.getByLabel('Code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${server.url}/`);
  assert.match(await page.textContent('[role=status]'), /verified/);

  await logOut(page);
  await logIn(page, server.url, 'dana', 'a long enough password');
  await chooseDevice(page, /backup/i);
  await page.getByLabel('Code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await alert(page, /Invalid token/);
  await page.close();
});

test('the admin is refused until the staff session is verified, then allowed', async () => {
  server.cli(['user', 'add', 'boss', '--staff', '--password-stdin'], 'the boss password\n');
  const added = JSON.parse(server.cli(['device', 'add', 'totp', '--user', 'boss', '--json']));
  const secret = new URL(added.uri).searchParams.get('secret');

  const page = await browser.newPage();
  await logIn(page, server.url, 'boss', 'the boss password');
  await page.waitForURL(/\/account\/login\/otp/);
  // The password alone does not open the admin.
  await page.goto(`${server.url}/admin`);
  assert.match(page.url(), /\/account\/login/);
  assert.doesNotMatch(await page.textContent('body'), /Users/);
  await screenshot(page, '09-admin-refused');

  await page.goto(`${server.url}/account/login/otp`);
  await page.getByLabel('Code').fill(totp(secret, now()));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${server.url}/`);
  await page.getByRole('link', { name: 'Admin' }).first().click();
  await page.waitForURL(/\/admin$/);
  assert.match(await page.textContent('body'), /boss/);
  assert.match(await page.textContent('body'), /dana/);
  await screenshot(page, '10-admin');
  await page.close();
});
