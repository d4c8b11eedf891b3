// Support for the end-to-end tests: a real `otp serve` on a fresh SQLite database, Debian's
// chromium driven headless by playwright-core, TOTP codes computed independently of the
// server's code, and screenshots kept as artifacts.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const OTP_BIN = process.env.OTP_BIN ?? '/var/tmp/otp-target/debug/otp';
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;

/** A running `otp serve` on its own database in a temporary directory. */
export async function startServer(extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'otp-e2e-'));
  const env = {
    ...process.env,
    OTP_DATABASE_URL: `sqlite://${join(dir, 'otp.db')}`,
    OTP_LOG: 'warn',
    ...extraEnv,
  };
  const child = spawn(OTP_BIN, ['serve', '--addr', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`otp serve did not start in 30 s:\n${log}`)), 30_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(/listening on (http:\/\/\S+)/);
      if (match) { clearTimeout(timer); resolve(match[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`otp serve exited with ${code}:\n${log}`)); });
  });
  return {
    url,
    env,
    log: () => log,
    /** Runs an `otp` command on the server's database; returns its stdout. */
    cli(args, input) {
      const result = spawnSync(OTP_BIN, args, { env, input, encoding: 'utf8' });
      if (result.status !== 0) {
        throw new Error(`otp ${args.join(' ')} exited with ${result.status}: ${result.stderr}`);
      }
      return result.stdout;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on('exit', resolve)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A headless chromium with the flags this machine needs. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
}

/** Saves a full-page screenshot under e2e/artifacts/. */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const index = alphabet.indexOf(ch);
    if (index < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The 6-digit SHA-1 TOTP code of a base32 secret at a Unix time (RFC 6238, 30 s steps). */
export function totp(secretBase32, unixSeconds = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const digest = createHmac('sha1', base32Decode(secretBase32)).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const value = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(value % 1_000_000).padStart(6, '0');
}

/** Fills and submits the sign-up form. */
export async function signUp(page, url, username, password) {
  await page.goto(`${url}/signup`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel(/again|confirm/i).fill(password);
  await page.getByRole('button', { name: /create/i }).click();
}

/** Logs in with a password (step one). */
export async function logIn(page, url, username, password) {
  await page.goto(`${url}/account/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** Logs out with the button in the header. */
export async function logOut(page) {
  await page.getByRole('button', { name: /log out/i }).click();
}

/** Selects the device whose label matches `pattern` on a second-factor form. */
export async function chooseDevice(page, pattern) {
  // `all()` does not wait: the page with the choice must have loaded first.
  await page.locator('#otp-device').waitFor();
  for (const option of await page.locator('#otp-device option').all()) {
    if (pattern.test(await option.textContent())) {
      await page.selectOption('#otp-device', await option.getAttribute('value'));
      return;
    }
  }
  throw new Error(`no device matches ${pattern}`);
}
