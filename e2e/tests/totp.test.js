// The test's own TOTP implementation must agree with RFC 6238 before it judges the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { totp } from './support.js';

test('RFC 6238 SHA-1 vectors, 6 digits', () => {
  // Key "12345678901234567890" in base32.
  const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
  assert.equal(totp(secret, 59), '287082');
  assert.equal(totp(secret, 1111111109), '081804');
  assert.equal(totp(secret, 1234567890), '005924');
});
