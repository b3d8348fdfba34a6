// CORS in a real browser: headless Chromium opens a page served from another origin
// (http://127.0.0.1:PAGE_PORT, a tiny static server in this process) whose fetch() calls
// gatehouse with credentials: 'include', as a single-page app on its own origin would:
// login, /users/me, refresh and logout, in cookie mode and in session mode.
//   - G_CORS_URL: gatehouse with CORS_ENABLED=true, CORS_ORIGIN=http://127.0.0.1:PAGE_PORT,
//     CORS_CREDENTIALS=true: every step must succeed, cookies set and sent back;
//   - G_NOCORS_URL: gatehouse with CORS_ENABLED=false: the browser must refuse (fetch throws
//     a TypeError), and so must it for a page on an origin CORS_ORIGIN does not list.
//   G_CORS_URL=… G_NOCORS_URL=… PAGE_PORT=… ADMIN_EMAIL=… ADMIN_PASSWORD=… node cors.mjs
// Ends with `cors-…: N passed, M failed`.
//
// Cookies: the page (127.0.0.1:PAGE_PORT) and gatehouse (127.0.0.1:<its port>) are different
// origins but the same site (a site ignores the port), so gatehouse's SameSite=Lax cookies are
// sent on these cross-origin fetches and are not third-party cookies. An app on another site
// would need REFRESH_TOKEN_COOKIE_SAME_SITE / SESSION_COOKIE_SAME_SITE=none with Secure.

import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert, env, finish, jwtPayload, step } from './lib.mjs';

const G_CORS = env('G_CORS_URL');
const G_NOCORS = env('G_NOCORS_URL');
const PAGE_PORT = Number(env('PAGE_PORT'));
const LABEL = `cors-${env('LABEL', 'db')}`;
const EMAIL = env('ADMIN_EMAIL');
const PASSWORD = env('ADMIN_PASSWORD');
const PAGE = `http://127.0.0.1:${PAGE_PORT}`;
// The same page on an origin CORS_ORIGIN does not list (localhost is another host).
const OTHER_PAGE = `http://localhost:${PAGE_PORT}`;

// The page: `call` runs one fetch and reports what the page could see of the answer.
const HTML = `<!doctype html><meta charset="utf-8"><title>cors e2e</title>
<script>
window.call = async (url, { method = 'POST', body, token } = {}) => {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = 'Bearer ' + token;
  try {
    const r = await fetch(url, { method, credentials: 'include', headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch {}
    return { status: r.status, json, text };
  } catch (e) {
    return { error: e.name + ': ' + e.message };
  }
};
</script><p>cors e2e page</p>`;

const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(HTML);
});
await new Promise((ok, fail) => server.listen(PAGE_PORT, '127.0.0.1', ok).on('error', fail));

const profile = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'gatehouse-e2e-cors-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
ctx.setDefaultTimeout(30000);
const page = ctx.pages()[0] || (await ctx.newPage());
const consoleErrors = [];
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text().slice(0, 160)));

/** One fetch from the page; prints what the page got. */
async function call(url, opts) {
  const r = await page.evaluate(([u, o]) => window.call(u, o), [url, opts || {}]);
  const what = r.error ?? `${r.status} ${r.text.slice(0, 120)}`;
  console.log(`  page ${PAGE_ORIGIN()} -> ${(opts && opts.method) || 'POST'} ${url}: ${what}`);
  return r;
}
const PAGE_ORIGIN = () => new URL(page.url()).origin;

/** gatehouse's cookies as the browser holds them (HttpOnly ones included). */
const cookie = async (name) => (await ctx.cookies(G_CORS)).find((c) => c.name === name);

// What one step leaves for the next: the access token, the cookies' last values.
const state = {};

/** Asserts a successful answer the page could read. */
function ok(r, status, what) {
  assert.ok(!r.error, `${what}: the browser refused it (${r.error})`);
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
}

try {
  await page.goto(`${PAGE}/`, { waitUntil: 'domcontentloaded' });

  await step('cookie mode: login from another origin sets the refresh cookie', async () => {
    const r = await call(`${G_CORS}/auth/login`, { body: { email: EMAIL, password: PASSWORD, mode: 'cookie' } });
    ok(r, 200, 'login');
    assert.deepEqual(Object.keys(r.json.data).sort(), ['access_token', 'expires']);
    assert.equal(jwtPayload(r.json.data.access_token).admin_access, true);
    const c = await cookie('directus_refresh_token');
    assert.ok(c && c.value.length === 64, 'no refresh cookie in the browser');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Lax');
    state.access = r.json.data.access_token;
    state.refresh = c.value;
    return `expires=${r.json.data.expires}, cookie ${c.name} (HttpOnly, Lax)`;
  });

  await step('cookie mode: /users/me with the access token (Authorization, preflighted)', async () => {
    const r = await call(`${G_CORS}/users/me?fields=email`, { method: 'GET', token: state.access });
    ok(r, 200, '/users/me');
    assert.equal(r.json.data.email, EMAIL);
    return r.json.data.email;
  });

  await step('cookie mode: refresh sends the cookie and rotates it', async () => {
    const r = await call(`${G_CORS}/auth/refresh`, { body: { mode: 'cookie' } });
    ok(r, 200, 'refresh');
    assert.deepEqual(Object.keys(r.json.data).sort(), ['access_token', 'expires']);
    const c = await cookie('directus_refresh_token');
    assert.ok(c && c.value !== state.refresh, 'refresh cookie not rotated');
    const me = await call(`${G_CORS}/users/me?fields=email`, { method: 'GET', token: r.json.data.access_token });
    ok(me, 200, '/users/me with the new token');
    state.refresh = c.value;
    return 'new access token works, cookie rotated';
  });

  await step('cookie mode: logout ends the session and clears the cookie', async () => {
    const r = await call(`${G_CORS}/auth/logout`, { body: { mode: 'cookie' } });
    ok(r, 204, 'logout');
    assert.equal(await cookie('directus_refresh_token'), undefined, 'refresh cookie still set');
    const again = await call(`${G_CORS}/auth/refresh`, { body: { mode: 'cookie' } });
    ok(again, 400, 'refresh after logout');
    assert.equal(again.json.errors[0].extensions.code, 'INVALID_PAYLOAD');
    return 'a refresh after it has no cookie to send (400 INVALID_PAYLOAD, readable: CORS headers on errors)';
  });

  await step('session mode: login sets the session cookie, no token in the body', async () => {
    const r = await call(`${G_CORS}/auth/login`, { body: { email: EMAIL, password: PASSWORD, mode: 'session' } });
    ok(r, 200, 'login');
    assert.deepEqual(Object.keys(r.json.data), ['expires']);
    const c = await cookie('directus_session_token');
    assert.ok(c, 'no session cookie in the browser');
    assert.equal(c.httpOnly, true);
    assert.equal(jwtPayload(c.value).admin_access, true);
    state.session = c.value;
    return `expires=${r.json.data.expires}, cookie ${c.name}`;
  });

  await step('session mode: /users/me is authenticated by the cookie alone', async () => {
    const r = await call(`${G_CORS}/users/me?fields=email`, { method: 'GET' });
    ok(r, 200, '/users/me');
    assert.equal(r.json.data.email, EMAIL);
    return r.json.data.email;
  });

  await step('session mode: refresh replaces the session cookie', async () => {
    const r = await call(`${G_CORS}/auth/refresh`, { body: { mode: 'session' } });
    ok(r, 200, 'refresh');
    assert.deepEqual(Object.keys(r.json.data), ['expires']);
    const c = await cookie('directus_session_token');
    assert.ok(c && c.value !== state.session, 'session cookie not replaced');
    const me = await call(`${G_CORS}/users/me?fields=email`, { method: 'GET' });
    ok(me, 200, '/users/me with the new cookie');
    state.session = c.value;
  });

  await step('session mode: logout clears the cookie; /users/me is anonymous again', async () => {
    const r = await call(`${G_CORS}/auth/logout`, { body: { mode: 'session' } });
    ok(r, 204, 'logout');
    assert.equal(await cookie('directus_session_token'), undefined, 'session cookie still set');
    const me = await call(`${G_CORS}/users/me`, { method: 'GET' });
    assert.ok(!me.error, `the browser refused the error answer (${me.error})`);
    assert.equal(me.status, 401);
    assert.equal(me.json.errors[0].extensions.code, 'INVALID_CREDENTIALS');
    return `then /users/me: ${me.status} ${me.json.errors[0].extensions.code}`;
  });

  await step('with CORS_ENABLED=false the browser refuses the same calls (TypeError)', async () => {
    const seen = [];
    for (const [path, opts] of [
      ['/auth/login', { body: { email: EMAIL, password: PASSWORD, mode: 'session' } }],
      ['/users/me', { method: 'GET' }],
      ['/auth/refresh', { body: { mode: 'cookie' } }],
    ]) {
      const r = await call(`${G_NOCORS}${path}`, opts);
      assert.ok(r.error && r.error.startsWith('TypeError'), `${path}: the page read ${r.status}, expected a refusal`);
      seen.push(`${path}: ${r.error}`);
    }
    assert.equal((await ctx.cookies(G_NOCORS)).length, 0, 'a cookie was set without CORS');
    return seen.join('; ');
  });

  await step('a page on an origin CORS_ORIGIN does not list is refused too', async () => {
    await page.goto(`${OTHER_PAGE}/`, { waitUntil: 'domcontentloaded' });
    const r = await call(`${G_CORS}/auth/login`, { body: { email: EMAIL, password: PASSWORD, mode: 'session' } });
    assert.ok(r.error && r.error.startsWith('TypeError'), `the page at ${OTHER_PAGE} read ${r.status}`);
    return r.error;
  });
} finally {
  if (consoleErrors.length) console.log(`browser console errors (expected for the refusals): ${consoleErrors.slice(0, 4).join(' | ')}`);
  await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  server.close();
}

finish(LABEL);
