// The official @directus/sdk (pinned 26.0.0) as a client of gatehouse:
// authentication('json' | 'cookie' | 'session') login, readMe, refresh (explicit, the SDK's
// timer and its refresh-before-request), logout, and staticToken().
//   G_URL=http://127.0.0.1:… ADMIN_EMAIL=… ADMIN_PASSWORD=… node sdk.mjs
// SDK_TARGET=directus points the same script at D_URL (a control run). The servers must
// run with ACCESS_TOKEN_TTL=35s so the SDK's automatic refresh (30 s before expiry) fires
// 5 s after login. Prints PASS/FAIL per step and ends with `sdk-…: N passed, M failed`.

import {
  authentication,
  createDirectus,
  isDirectusError,
  readMe,
  readProviders,
  refresh as refreshCmd,
  rest,
  serverPing,
  staticToken,
  updateUser,
} from '@directus/sdk';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { assert, env, finish, http, jwtPayload, sleep, step } from './lib.mjs';

const target = process.env.SDK_TARGET === 'directus' ? 'directus' : 'gatehouse';
const URL_ = target === 'directus' ? env('D_URL') : env('G_URL');
const LABEL = `sdk-${target}`;
const EMAIL = env('ADMIN_EMAIL');
const PASSWORD = env('ADMIN_PASSWORD');

// The installed SDK's version, from its package.json next to its entry point.
const sdkEntry = createRequire(import.meta.url).resolve('@directus/sdk');
const sdkVersion = JSON.parse(
  readFileSync(join(sdkEntry.slice(0, sdkEntry.lastIndexOf('/dist/')), 'package.json'), 'utf8'),
).version;
console.log(`${LABEL}: @directus/sdk ${sdkVersion} against ${target} at ${URL_}`);

/** fetch with a cookie jar, as a browser would keep the refresh or session cookie. */
function cookieFetch() {
  const jar = new Map();
  const f = async (input, init = {}) => {
    const headers = new Headers(init.headers || {});
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(input, { ...init, headers, signal: AbortSignal.timeout(20000) });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const maxAge = attrs.map((a) => a.trim().toLowerCase()).find((a) => a.startsWith('max-age='));
      if (!value || (maxAge && Number(maxAge.slice(8)) <= 0)) jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  };
  f.jar = jar;
  return f;
}

function client(mode, opts = {}) {
  const fetchImpl = opts.fetch || cookieFetch();
  const c = createDirectus(URL_, { globals: { fetch: fetchImpl } })
    .with(authentication(mode, { credentials: 'include', ...(opts.auth || {}) }))
    .with(rest({ credentials: 'include' }));
  c.jar = fetchImpl.jar;
  return c;
}

async function expectSdkError(promise, code) {
  try {
    await promise;
  } catch (e) {
    assert.ok(isDirectusError(e), `not a Directus error: ${e}`);
    assert.equal(e.errors[0].extensions.code, code);
    assert.equal(e.response.status, code === 'INVALID_PAYLOAD' ? 400 : 401);
    return;
  }
  assert.fail(`expected ${code}`);
}

let adminId;

// ---------------------------------------------------------------- json
{
  const c = client('json', { auth: { autoRefresh: false } });
  let first;
  await step('json: login() returns access_token, refresh_token and expires (TTL in ms)', async () => {
    first = await c.login({ email: EMAIL, password: PASSWORD });
    assert.equal(typeof first.access_token, 'string');
    assert.match(first.refresh_token, /^[A-Za-z0-9_-]{64}$/);
    assert.equal(first.expires, 35000);
    assert.ok(Math.abs(first.expires_at - (Date.now() + 35000)) < 5000);
    adminId = jwtPayload(first.access_token).id;
    return `expires=${first.expires}`;
  });
  await step('json: readMe() with the stored token', async () => {
    const me = await c.request(readMe({ fields: ['id', 'email', 'role'] }));
    assert.equal(me.id, adminId);
    assert.equal(me.email, EMAIL);
    assert.match(me.role, /^[0-9a-f-]{36}$/);
  });
  let second;
  await step('json: refresh() rotates the refresh token and returns a working access token', async () => {
    second = await c.refresh();
    assert.notEqual(second.refresh_token, first.refresh_token);
    // (The access token may equal the first one: same claims within the same second.)
    assert.equal(jwtPayload(second.access_token).id, adminId);
    assert.equal(second.expires, 35000);
    assert.equal((await c.request(readMe({ fields: ['id'] }))).id, adminId);
  });
  await step('json: the rest command refresh({mode, refresh_token}) works too', async () => {
    const r = await c.request(refreshCmd({ mode: 'json', refresh_token: second.refresh_token }));
    assert.match(r.refresh_token, /^[A-Za-z0-9_-]{64}$/);
    assert.equal(jwtPayload(r.access_token).id, adminId);
    second = r;
    await c.setToken(r.access_token);
  });
  await step('json: logout() ends the session; its refresh token no longer works', async () => {
    const c2 = client('json', { auth: { autoRefresh: false } });
    const l = await c2.login({ email: EMAIL, password: PASSWORD });
    await c2.logout();
    assert.equal(await c2.getToken(), null, 'SDK storage cleared');
    const r = await http(URL_, '/auth/refresh', { json: { refresh_token: l.refresh_token, mode: 'json' } });
    assert.equal(r.status, 401);
    assert.equal(r.body.errors[0].extensions.code, 'INVALID_CREDENTIALS');
  });
  await step('json: a wrong password makes login() throw INVALID_CREDENTIALS', async () => {
    await expectSdkError(client('json').login({ email: EMAIL, password: 'not-the-password' }), 'INVALID_CREDENTIALS');
  });
}

// ---------------------------------------------------------------- automatic refresh
await step('json: the SDK refreshes by itself on its timer (30 s before expiry)', async () => {
  // A storage the test can read without going through getToken() (which would refresh).
  const storage = { data: null, get() { return this.data; }, set(v) { this.data = v; } };
  let refreshes = 0;
  const base = cookieFetch();
  const counting = async (input, init) => {
    if (String(input).endsWith('/auth/refresh')) refreshes += 1;
    return base(input, init);
  };
  const c = client('json', { fetch: counting, auth: { storage } }); // autoRefresh: true (default)
  const l = await c.login({ email: EMAIL, password: PASSWORD });
  const t0 = Date.now();
  while (storage.data?.access_token === l.access_token || !storage.data?.access_token) {
    if (Date.now() - t0 > 15000) break;
    await sleep(100);
  }
  c.stopRefreshing();
  const after = Date.now() - t0;
  assert.equal(refreshes, 1, `refreshes seen: ${refreshes}`);
  assert.notEqual(storage.data.access_token, l.access_token, 'no automatic refresh within 15 s');
  assert.ok(after >= 4000 && after < 9000, `refreshed after ${after} ms, expected ~5000`);
  assert.equal((await c.request(readMe({ fields: ['id'] }))).id, adminId);
  return `refreshed after ${after} ms`;
});

await step('json: a request made when the token is about to expire refreshes first (getToken)', async () => {
  let refreshes = 0;
  const base = cookieFetch();
  const counting = async (input, init) => {
    if (String(input).endsWith('/auth/refresh')) refreshes += 1;
    return base(input, init);
  };
  const c = client('json', { fetch: counting, auth: { autoRefresh: false } });
  const l = await c.login({ email: EMAIL, password: PASSWORD });
  await sleep(5500); // 35 s TTL: now within the SDK's 30 s refresh margin
  const me = await c.request(readMe({ fields: ['id'] }));
  assert.equal(me.id, adminId);
  assert.equal(refreshes, 1, 'one refresh before the request');
  assert.notEqual(await c.getToken(), l.access_token);
});

// ---------------------------------------------------------------- cookie
await step('cookie: login(), readMe(), refresh() and logout() with the refresh cookie', async () => {
  const c = client('cookie', { auth: { autoRefresh: false } });
  const l = await c.login({ email: EMAIL, password: PASSWORD });
  assert.equal(l.refresh_token, undefined, 'no refresh token in the body');
  assert.equal(typeof l.access_token, 'string');
  const cookie1 = c.jar.get('directus_refresh_token');
  assert.match(cookie1 ?? '', /^[A-Za-z0-9_-]{64}$/, 'refresh cookie kept');
  assert.equal((await c.request(readMe({ fields: ['id'] }))).id, adminId);
  const r = await c.refresh();
  assert.equal(jwtPayload(r.access_token).id, adminId);
  const cookie2 = c.jar.get('directus_refresh_token');
  assert.ok(cookie2 && cookie2 !== cookie1, 'refresh cookie rotated');
  assert.equal((await c.request(readMe({ fields: ['id'] }))).id, adminId);
  await c.logout();
  assert.ok(!c.jar.get('directus_refresh_token'), 'refresh cookie cleared by logout');
  const again = await http(URL_, '/auth/refresh', { json: { mode: 'cookie' }, cookie: { directus_refresh_token: cookie2 } });
  assert.equal(again.status, 401);
});

// ---------------------------------------------------------------- session
await step('session: login(), readMe(), refresh() and logout() with the session cookie', async () => {
  const c = client('session', { auth: { autoRefresh: false } });
  const l = await c.login({ email: EMAIL, password: PASSWORD });
  assert.equal(l.access_token, undefined, 'no token in the body');
  assert.equal(l.expires, 86400000);
  const s1 = c.jar.get('directus_session_token');
  assert.equal(jwtPayload(s1).id, adminId);
  assert.equal((await c.request(readMe({ fields: ['id', 'email'] }))).email, EMAIL);
  await c.refresh();
  const s2 = c.jar.get('directus_session_token');
  assert.ok(s2 && s2 !== s1, 'session cookie replaced');
  assert.equal((await c.request(readMe({ fields: ['id'] }))).id, adminId);
  await c.logout();
  assert.ok(!c.jar.get('directus_session_token'), 'session cookie cleared by logout');
  // No cookie left: the request is anonymous, and /users/me says 401 INVALID_CREDENTIALS.
  await expectSdkError(c.request(readMe()), 'INVALID_CREDENTIALS');
  const old = await http(URL_, '/users/me', { cookie: { directus_session_token: s2 } });
  assert.equal(old.status, 401, 'the old session cookie is dead');
});

// ---------------------------------------------------------------- static token
await step('staticToken(): a token stored on the user authenticates readMe()', async () => {
  const admin = client('json', { auth: { autoRefresh: false } });
  await admin.login({ email: EMAIL, password: PASSWORD });
  const token = `sdk-static-${randomBytes(12).toString('hex')}`;
  const updated = await admin.request(updateUser(adminId, { token }, { fields: ['id', 'token'] }));
  assert.equal(updated.token, '**********');
  const s = createDirectus(URL_).with(staticToken(token)).with(rest());
  const me = await s.request(readMe({ fields: ['id', 'email'] }));
  assert.deepEqual(me, { id: adminId, email: EMAIL });
  const bad = createDirectus(URL_).with(staticToken(`${token}-wrong`)).with(rest());
  await expectSdkError(bad.request(readMe()), 'INVALID_CREDENTIALS');
  await admin.request(updateUser(adminId, { token: null }));
});

await step('readProviders() and serverPing()', async () => {
  const c = client('json');
  const providers = await c.request(readProviders());
  assert.ok(Array.isArray(providers));
  assert.equal(await c.request(serverPing()), 'pong');
  return `providers=${JSON.stringify(providers)}`;
});

finish(LABEL);
