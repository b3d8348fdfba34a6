// Small test harness shared by the e2e scripts: numbered pass/fail lines, a closing
// `N passed, M failed` line, HTTP helpers that keep cookies, JWT decoding and TOTP codes.
// No dependencies beyond Node 20's standard library.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

export { assert };

let passed = 0;
let failed = 0;
const failures = [];
const notes = [];

/** Runs one named step; a thrown error (or failed assert) makes it a FAIL line. */
export async function step(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    passed += 1;
    console.log(`PASS ${name}${detail ? ` (${detail})` : ''} [${Date.now() - t0} ms]`);
    return true;
  } catch (e) {
    failed += 1;
    failures.push(name);
    const msg = (e && (e.stack || e.message)) || String(e);
    console.log(`FAIL ${name}: ${msg.split('\n').slice(0, 6).join('\n    ')}`);
    return false;
  }
}

/** A behaviour that is expected to differ from Directus: printed, not counted. */
export function note(text) {
  notes.push(text);
  console.log(`NOTE ${text}`);
}

/** Prints the closing lines and sets the exit code. */
export function finish(label) {
  if (notes.length) console.log(`${label}: ${notes.length} note(s) on known differences (see NOTE lines)`);
  if (failures.length) console.log(`${label}: failed steps: ${failures.join('; ')}`);
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  // Exit now: a client's refresh timer must not keep the process alive. (stdout is a pipe or
  // a file here; both are written synchronously on Linux, so nothing is lost.)
  process.exit(failed ? 1 : 0);
}

/** Decodes a JWT's payload without verifying it. */
export function jwtPayload(token) {
  assert.equal(typeof token, 'string', 'token is not a string');
  const parts = token.split('.');
  assert.equal(parts.length, 3, 'token is not a JWT');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

/** Parses Set-Cookie headers into {name: {value, attrs}}. */
export function setCookies(res) {
  const out = {};
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim();
    const a = {};
    for (const attr of attrs) {
      const [k, ...v] = attr.trim().split('=');
      a[k.toLowerCase()] = v.join('=');
    }
    out[name] = { value: decodeURIComponent(pair.slice(i + 1).trim()), attrs: a, raw: line };
  }
  return out;
}

/**
 * One HTTP call with a bounded time. Returns {status, body (parsed JSON or text), res, cookies}.
 * opts: {method, json, token, cookie (object name->value), headers}
 */
export async function http(base, path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  let body;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.cookie) {
    headers.cookie = Object.entries(opts.cookie)
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
      .join('; ');
  }
  const res = await fetch(base + path, {
    method: opts.method || (body ? 'POST' : 'GET'),
    headers,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(opts.timeout || 20000),
  });
  const text = await res.text();
  let parsed = text;
  if ((res.headers.get('content-type') || '').includes('json') && text) parsed = JSON.parse(text);
  return { status: res.status, body: parsed, res, cookies: setCookies(res), text };
}

/** Asserts a status, showing the body when it differs. */
export function expectStatus(r, status, what = '') {
  assert.equal(r.status, status, `${what} expected HTTP ${status}, got ${r.status}: ${String(r.text).slice(0, 300)}`);
}

/** Asserts a Directus error envelope with this code. */
export function expectError(r, status, code, what = '') {
  expectStatus(r, status, what);
  assert.ok(r.body && Array.isArray(r.body.errors), `${what} no errors envelope: ${String(r.text).slice(0, 300)}`);
  assert.equal(r.body.errors[0].extensions.code, code, `${what} error code`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
}

// ---------------------------------------------------------------- TOTP (RFC 6238, SHA-1, 6 digits, 30 s)
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function base32(secret) {
  let bits = '';
  for (const c of secret.toUpperCase()) bits += B32.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from((bits.match(/.{8}/g) || []).map((b) => parseInt(b, 2)));
}

/** The 30-second step of a time (now by default). */
export const stepOf = (ms = Date.now()) => Math.floor(ms / 30000);

/** The code of `secret` (base32) at step `step`. */
export function totpAt(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', base32(secret)).update(msg).digest();
  const o = h[19] & 15;
  const n = (((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3]) % 1e6;
  return String(n).padStart(6, '0');
}

/** A code with at least 4 s of its step left, in a step after `after` (codes are single-use):
 * `{otp, step}`. Waits for the next step when needed. */
export async function totpCode(secret, after = -1) {
  for (;;) {
    const now = Date.now();
    const s = stepOf(now);
    const left = (s + 1) * 30000 - now;
    if (s > after && left > 4000) return { otp: totpAt(secret, s), step: s };
    await sleep(s > after ? left + 50 : (after + 1) * 30000 - now + 50);
  }
}
