// Sign-up, log-out and a password-only log-in, in a real browser.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, logIn, logOut, screenshot, signUp, startServer } from './support.js';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a newcomer signs up, logs out and logs in again with the password alone', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await screenshot(page, '01-home-anonymous');
  await signUp(page, server.url, 'carol', 'correct horse battery');
  await page.waitForURL(`${server.url}/`);
  assert.match(await page.textContent('body'), /carol/);
  await screenshot(page, '02-home-after-signup');

  await logOut(page);
  await page.waitForURL(/\/account\/login/);
  await screenshot(page, '03-login');

  await logIn(page, server.url, 'carol', 'wrong password');
  assert.match(await page.textContent('[role=alert]'), /correct username and password/);
  // The password is never echoed back.
  assert.equal(await page.getByLabel('Password').inputValue(), '');

  await logIn(page, server.url, 'carol', 'correct horse battery');
  await page.waitForURL(`${server.url}/`);
  assert.match(await page.textContent('body'), /carol/);
  await page.close();
});
