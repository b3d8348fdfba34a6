// Single sign-on end to end: a gatehouse configured with Directus's AUTH_* variables signs users
// in through a real OpenID Provider (e2e/oidc-provider.mjs, panva's oidc-provider) with both
// drivers, `openid` (discovery, ID token) and the generic `oauth2` (authorize / token / profile
// URLs). The happy paths run in headless Chromium through the provider's own login and consent
// pages; the attacks (tampered state parameter or cookie, replayed code, …) use fetch with
// manual redirects and a small cookie jar. Expected answers are those of Directus 12.4.0's
// `api/src/auth/drivers/openid.ts` and `oauth2.ts` (its SSO needs a licence, so it cannot run
// beside gatehouse here). A small HTTP server on APP_PORT stands for the app the users are sent
// back to (its URLs are on the providers' REDIRECT_ALLOW_LIST).
//
//   node sso.mjs fixtures   # before the SSO gatehouse starts: roles (ids ROLE_*) and a policy,
//                           # made through Directus's API on the shared database
//   GS_URL=… D_URL=… ISSUER=… APP_PORT=… HANG_PORT=… ROLE_EDITOR=… ROLE_STAFF=… ROLE_TFA=…
//   ROLE_DEFAULT=… ADMIN_EMAIL=… ADMIN_PASSWORD=… SHOT_DIR=… node sso.mjs
// Providers (scripts/e2e.sh sets them): openid (registration on, ROLE_MAPPING, SYNC_USER_INFO),
// oauth (oauth2 driver, dotted name keys), closed (registration off), rogue (an issuer whose
// JWKS does not hold its signing key), down (issuer on a closed port), hang (an issuer that
// accepts connections and never answers); the last two with ISSUER_DISCOVERY_MUST_SUCCEED=false.

import { chromium } from 'playwright-core';
import { createHash, createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { assert, env, expectError, expectStatus, finish, http, jwtPayload, sleep, step, totpCode } from './lib.mjs';

const D = env('D_URL');
const ADMIN = { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') };
const ROLES = {
  editor: env('ROLE_EDITOR'), staff: env('ROLE_STAFF'), tfa: env('ROLE_TFA'), fallback: env('ROLE_DEFAULT'),
};

async function adminToken() {
  const r = await http(D, '/auth/login', { json: { ...ADMIN, mode: 'json' } });
  expectStatus(r, 200, 'admin login at Directus:');
  return r.body.data.access_token;
}

// ------------------------------------------------------------------ fixtures mode
if (process.argv[2] === 'fixtures') {
  const token = await adminToken();
  const post = async (path, json) => {
    const r = await http(D, path, { json, token });
    expectStatus(r, 200, `POST ${path}`);
    return r.body.data.id;
  };
  // No app access: unlicensed Directus 12 counts app users as seats. Users read users and
  // update themselves (tfa_secret included, for POST /users/me/tfa/enable): Directus's
  // "recommended" self-update preset, which an unlicensed Directus accepts (custom rules are licensed).
  const SELF_UPDATE = ['first_name', 'last_name', 'email', 'password', 'location', 'title', 'description', 'avatar', 'language',
    'appearance', 'theme_light', 'theme_dark', 'theme_light_overrides', 'theme_dark_overrides', 'tfa_secret'];
  const policy = await post('/policies', { name: 'e2e sso', app_access: false, admin_access: false });
  await post('/permissions', { policy, collection: 'directus_users', action: 'read', permissions: {}, fields: ['*'] });
  await post('/permissions', { policy, collection: 'directus_users', action: 'update', permissions: { id: { _eq: '$CURRENT_USER' } }, fields: SELF_UPDATE });
  for (const [name, id] of Object.entries(ROLES)) {
    await post('/roles', { id, name: `e2e sso ${name}` });
    await post('/access', { role: id, policy });
  }
  console.log(`sso fixtures: policy ${policy}, roles ${Object.values(ROLES).join(', ')}`);
  process.exit(0);
}

const GS = env('GS_URL');
const ISSUER = env('ISSUER');
const APP_PORT = Number(env('APP_PORT'));
const APP = `http://127.0.0.1:${APP_PORT}`;
const AFTER = `${APP}/after-login`;
const LABEL = `sso-${env('LABEL', 'db')}`;
const SHOT_DIR = env('SHOT_DIR', '.');
mkdirSync(SHOT_DIR, { recursive: true });
const callbackOf = (p) => `${GS}/auth/login/${p}/callback`;
const ME_FIELDS = 'id,email,first_name,last_name,role,provider,external_identifier,status';

// ------------------------------------------------------------------ counterparts
const app = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>app</title><p id="where">${req.url.split('?')[0].replace(/[<>&]/g, '')}</p>`);
});
await new Promise((ok, fail) => app.listen(APP_PORT, '127.0.0.1', ok).on('error', fail));
// An issuer that accepts connections and never answers (for the `hang` provider).
const held = [];
const hang = net.createServer((s) => held.push(s));
await new Promise((ok, fail) => hang.listen(Number(env('HANG_PORT')), '127.0.0.1', ok).on('error', fail));

// TOTP codes: e2e/lib.mjs.
const totp = totpCode;

// ------------------------------------------------------------------ HTTP agent
/** A browser stand-in for the HTTP-level cases: cookies by host and path (not port, as in
 * browsers), redirects followed by hand. */
class Agent {
  constructor() { this.jar = []; }

  header(url) {
    const u = new URL(url);
    return this.jar.filter((c) => c.host === u.hostname && u.pathname.startsWith(c.path))
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }

  store(url, res) {
    const host = new URL(url).hostname;
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      let path = '/';
      let gone = value === '';
      for (const a of attrs) {
        const [k, ...v] = a.trim().split('=');
        const key = k.toLowerCase();
        if (key === 'path') path = v.join('=') || '/';
        if (key === 'expires' && Date.parse(v.join('=')) < Date.now()) gone = true;
        if (key === 'max-age' && Number(v.join('=')) <= 0) gone = true;
      }
      this.jar = this.jar.filter((c) => !(c.host === host && c.name === name && c.path === path));
      if (!gone) this.jar.push({ host, name, value, path });
    }
  }

  cookie(name) { return this.jar.find((c) => c.name === name)?.value; }

  setCookie(name, value) {
    this.jar = this.jar.filter((c) => c.name !== name);
    if (value !== undefined) this.jar.push({ host: '127.0.0.1', name, value, path: '/' });
  }

  /** One request; no redirect followed. `location` is resolved against the URL. */
  async fetch(url, { method = 'GET', form, timeout = 20000 } = {}) {
    const headers = {};
    const cookie = this.header(url);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeout) });
    this.store(url, res);
    const text = await res.text();
    const raw = res.headers.get('location');
    return { url, status: res.status, res, text, raw, location: raw === null ? null : new URL(raw, url).toString() };
  }

  /** Follows redirects until a page, or a Location for which stop() holds (not followed). */
  async follow(url, stop, opts = {}) {
    let r = await this.fetch(url, opts);
    for (let hops = 0; hops < 15; hops += 1) {
      if (!r.location || r.status < 300 || r.status > 399) return r;
      if (stop(r.location)) return { ...r, stopped: r.location };
      r = await this.fetch(r.location);
    }
    throw new Error(`too many redirects from ${url}`);
  }
}

/**
 * From gatehouse's start URL through the provider (its login form, then its consent form,
 * when they show) to the Location that points at the provider's callback (not followed).
 */
async function toCallback(agent, provider, user, query = {}) {
  const start = `${GS}/auth/login/${provider}?${new URLSearchParams({ redirect: `${AFTER}?via=${provider}`, ...query })}`;
  const stop = (u) => u.startsWith(callbackOf(provider));
  let r = await agent.follow(start, stop);
  for (let i = 0; i < 4 && !r.stopped; i += 1) {
    assert.equal(r.status, 200, `provider page ${r.url}: ${r.status} ${r.text.slice(0, 300)}`);
    const m = r.text.match(/<form[^>]*action="([^"]+)"/);
    assert.ok(m, `no form at ${r.url}: ${r.text.slice(0, 300)}`);
    const action = new URL(m[1], r.url).toString();
    const form = action.endsWith('/login') ? { login: user, password: `${user}-pw` } : {};
    r = await agent.follow(action, stop, { method: 'POST', form });
  }
  assert.ok(r.stopped, `never sent back to ${callbackOf(provider)}`);
  return r.stopped;
}

/** Asserts a redirect to `where` with `?reason=<code>` (Directus: `<redirect without query>?reason=`). */
function expectReason(r, where, code, what) {
  assert.equal(r.status, 302, `${what}: expected 302, got ${r.status}: ${r.text.slice(0, 300)}`);
  assert.equal(r.location, `${where}?reason=${code}`, `${what}: Location`);
  assert.equal(r.res.headers.getSetCookie().some((c) => c.startsWith('directus_session_token=') && !/^directus_session_token=;/.test(c)), false,
    `${what}: a session cookie was set`);
}

/** The state cookie's clearing header, as Express's clearCookie writes it. */
function expectStateCleared(r, name, what) {
  const line = r.res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
  assert.ok(line, `${what}: the state cookie ${name} is not cleared`);
  assert.match(line, /^[^=]+=;/, `${what}: clearing value`);
  assert.match(line, /Expires=Thu, 01 Jan 1970/i, `${what}: clearing expiry`);
}

const findUsers = async (token, filter) => {
  const r = await http(D, `/users?fields=id,email,provider,external_identifier&filter=${encodeURIComponent(JSON.stringify(filter))}`, { token });
  expectStatus(r, 200, 'GET /users at Directus');
  return r.body.data;
};

// ------------------------------------------------------------------ browser
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
const contexts = [];
async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  ctx.setDefaultTimeout(20000);
  contexts.push(ctx);
  return ctx.newPage();
}

/**
 * In the browser: open the start URL, sign in at the provider's form and allow on its
 * consent page (each only when shown), until the browser is at `until(url)`.
 * Returns what was shown on the way.
 */
async function browserSignIn(page, startUrl, user, until, shot) {
  const shown = [];
  await page.goto(startUrl, { waitUntil: 'domcontentloaded' });
  for (let i = 0; i < 5; i += 1) {
    if (until(page.url())) return shown;
    const login = page.locator('#login');
    const allow = page.locator('#allow');
    await Promise.race([
      login.waitFor({ state: 'visible' }),
      allow.waitFor({ state: 'visible' }),
      page.waitForURL((u) => until(u.toString())),
    ]).catch(() => {});
    if (until(page.url())) return shown;
    if (await login.isVisible()) {
      shown.push('login form');
      if (shot) await page.screenshot({ path: join(SHOT_DIR, `${shot}-provider-login.png`) });
      await page.fill('#login', user);
      await page.fill('#password', `${user}-pw`);
      await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('#submit')]);
    } else if (await allow.isVisible()) {
      shown.push(`consent (${await page.locator('#scopes').textContent()})`);
      if (shot) await page.screenshot({ path: join(SHOT_DIR, `${shot}-provider-consent.png`) });
      await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('#allow')]);
    } else {
      throw new Error(`stuck at ${page.url()}: ${(await page.content()).slice(0, 300)}`);
    }
  }
  if (!until(page.url())) throw new Error(`ended at ${page.url()}`);
  return shown;
}

/** `/users/me` in that browser (its cookies), read as JSON. */
async function meInBrowser(page) {
  const r = await page.goto(`${GS}/users/me?fields=${ME_FIELDS}`, { waitUntil: 'domcontentloaded' });
  assert.equal(r.status(), 200, `/users/me in the browser: ${r.status()} ${(await r.text()).slice(0, 200)}`);
  return (await r.json()).data;
}

const sessionCookie = async (page) => (await page.context().cookies(GS)).find((c) => c.name === 'directus_session_token');

let DA;
const seen = {};
try {
  DA = await adminToken();

  await step('GET /auth lists the providers with their drivers and labels', async () => {
    const r = await http(GS, '/auth');
    expectStatus(r, 200);
    const by = Object.fromEntries(r.body.data.map((p) => [p.name, p]));
    for (const [name, driver] of [['openid', 'openid'], ['oauth', 'oauth2'], ['closed', 'openid'], ['rogue', 'openid'], ['down', 'openid'], ['hang', 'openid']]) {
      assert.ok(by[name], `${name} not listed: ${JSON.stringify(r.body)}`);
      assert.equal(by[name].driver, driver, `${name} driver`);
    }
    assert.equal(by.openid.label, 'E2E OpenID');
    assert.equal(r.body.disableDefault, false);
    return r.body.data.map((p) => `${p.name}:${p.driver}`).join(' ');
  });

  // ---------------------------------------------------------------- happy paths, in Chromium
  const pages = {};
  for (const [provider, user, first, last] of [['openid', 'alice', 'Alice', 'Liddell'], ['oauth', 'bob', 'Bob', 'Builder']]) {
    await step(`${provider}: the browser signs in at the provider's form and consent page and lands exactly on the redirect with the session cookie`, async () => {
      const page = await newPage();
      pages[provider] = page;
      const target = `${AFTER}?via=${provider}&n=1`;
      const start = `${GS}/auth/login/${provider}?redirect=${encodeURIComponent(target)}`;
      const shown = await browserSignIn(page, start, user, (u) => u.startsWith(APP), provider);
      assert.equal(page.url(), target, 'landed on');
      assert.ok(shown.includes('login form'), `the provider's login form was not shown (${shown})`);
      assert.ok(shown.some((s) => s.startsWith('consent')), `the provider's consent page was not shown (${shown})`);
      const c = await sessionCookie(page);
      assert.ok(c, 'no directus_session_token cookie');
      assert.equal(c.httpOnly, true);
      assert.equal(c.sameSite, 'Lax');
      const claims = jwtPayload(c.value);
      assert.ok(claims.session, 'the session JWT has no session claim');
      const state = (await page.context().cookies(GS)).find((x) => x.name === `${provider === 'oauth' ? 'oauth2' : 'openid'}.${provider}`);
      assert.equal(state, undefined, 'the state cookie is still there');
      await page.screenshot({ path: join(SHOT_DIR, `sso-${provider}-landed.png`) });
      return `shown: ${shown.join(', ')}`;
    });

    await step(`${provider}: /users/me in that browser is the new user, role from ROLE_MAPPING (the provider's groups claim); Directus accepts the cookie too`, async () => {
      const me = await meInBrowser(pages[provider]);
      assert.equal(me.email, `${user}.sso@example.com`);
      assert.equal(me.provider, provider);
      assert.equal(me.external_identifier, user);
      assert.equal(me.first_name, first);
      assert.equal(me.last_name, last);
      assert.equal(me.role, ROLES.editor, 'role (groups e2e-editors -> ROLE_EDITOR; mapping order wins over group order)');
      assert.equal(me.status, 'active');
      seen[provider] = me;
      const c = await sessionCookie(pages[provider]);
      const d = await http(D, '/users/me?fields=id', { cookie: { directus_session_token: c.value } });
      expectStatus(d, 200, 'Directus /users/me with the SSO session cookie:');
      assert.equal(d.body.data.id, me.id);
      return `user ${me.id}, role ${me.role}`;
    });
  }

  await step('openid: a second login of the same user finds the account (same id), and SYNC_USER_INFO shows the name changed at the provider', async () => {
    const r = await fetch(`${ISSUER}/test/accounts/alice`, { method: 'POST', body: JSON.stringify({ given_name: 'Alicia', family_name: 'Pleasance' }), signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200);
    const page = pages.openid;
    const target = `${AFTER}?via=openid&n=2`;
    const shown = await browserSignIn(page, `${GS}/auth/login/openid?redirect=${encodeURIComponent(target)}`, 'alice', (u) => u.startsWith(APP));
    assert.equal(page.url(), target);
    const me = await meInBrowser(page);
    assert.equal(me.id, seen.openid.id, 'a new account was made');
    assert.equal(me.first_name, 'Alicia');
    assert.equal(me.last_name, 'Pleasance');
    assert.equal(me.role, ROLES.editor);
    return `provider pages on the second login: ${shown.join(', ') || 'none (its session)'}`;
  });

  await step('oauth: a second login finds the same account; without SYNC_USER_INFO the names stay as created', async () => {
    await fetch(`${ISSUER}/test/accounts/bob`, { method: 'POST', body: JSON.stringify({ given_name: 'Robert' }), signal: AbortSignal.timeout(5000) });
    const page = pages.oauth;
    const target = `${AFTER}?via=oauth&n=2`;
    await browserSignIn(page, `${GS}/auth/login/oauth?redirect=${encodeURIComponent(target)}`, 'bob', (u) => u.startsWith(APP));
    assert.equal(page.url(), target);
    const me = await meInBrowser(page);
    assert.equal(me.id, seen.oauth.id);
    assert.equal(me.first_name, 'Bob');
  });

  // TFA: set up now, signed in through the provider at the end (a code is used once, so the
  // login waits for the step after the enabling one; the cases between take that time).
  let tfa;
  await step('TFA setup: dave signs in through the provider (role from the e2e-tfa group), enables TFA through the API with a TOTP computed here', async () => {
    const page = await newPage();
    await browserSignIn(page, `${GS}/auth/login/openid?redirect=${encodeURIComponent(AFTER)}`, 'dave', (u) => u.startsWith(APP));
    assert.equal(page.url(), AFTER);
    const me = await meInBrowser(page);
    assert.equal(me.role, ROLES.tfa);
    const cookie = { directus_session_token: (await sessionCookie(page)).value };
    const g = await http(GS, '/users/me/tfa/generate', { json: {}, cookie });
    expectStatus(g, 200, 'tfa/generate (an SSO user needs no password):');
    const { secret } = g.body.data;
    assert.match(secret, /^[A-Z2-7]{16}$/);
    const { otp, step: s } = await totp(secret);
    const e = await http(GS, '/users/me/tfa/enable', { json: { secret, otp }, cookie });
    // Directus answers 204; gatehouse 200 with recovery codes (docs/compatibility.md).
    assert.ok([200, 204].includes(e.status), `tfa/enable: ${e.status} ${e.text.slice(0, 200)}`);
    tfa = { page, secret, step: s, id: me.id };
    return `user ${me.id}`;
  });

  // ---------------------------------------------------------------- attacks and failures, over HTTP
  await step('a redirect not on the allow list is 400 INVALID_PAYLOAD at the start (both drivers), and no state cookie is set', async () => {
    const bad = [`${APP}/elsewhere`, 'http://evil.example/after-login', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)', `${AFTER.replace('http:', 'ftp:')}`];
    for (const provider of ['openid', 'oauth']) {
      for (const redirect of bad) {
        const r = await new Agent().fetch(`${GS}/auth/login/${provider}?redirect=${encodeURIComponent(redirect)}`);
        expectError({ ...r, body: JSON.parse(r.text) }, 400, 'INVALID_PAYLOAD', `${provider} ${redirect}:`);
        assert.equal(JSON.parse(r.text).errors[0].message, `Invalid payload. URL "${redirect}" can't be used to redirect after login.`);
        assert.equal(r.res.headers.getSetCookie().length, 0, `${provider} ${redirect}: cookies set`);
      }
    }
    // Allowed: on the list with another query, the PUBLIC_URL origin, a relative path.
    for (const redirect of [`${AFTER}?x=1`, `${GS}/admin`, '/admin/content']) {
      const r = await new Agent().fetch(`${GS}/auth/login/openid?redirect=${encodeURIComponent(redirect)}`);
      assert.equal(r.status, 302, `${redirect}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.ok(r.location.startsWith(`${ISSUER}/auth?`), `${redirect}: to ${r.location}`);
    }
    return `${bad.length} refused per driver`;
  });

  await step('the start redirect: 302 to the provider with PKCE S256, state, nonce (openid) and the callback; a signed state cookie; no-store', async () => {
    for (const [provider, cookieName] of [['openid', 'openid.openid'], ['oauth', 'oauth2.oauth']]) {
      const a = new Agent();
      const r = await a.fetch(`${GS}/auth/login/${provider}?redirect=${encodeURIComponent(AFTER)}&otp=123456`);
      assert.equal(r.status, 302);
      const q = new URL(r.location).searchParams;
      assert.equal(q.get('client_id'), env('CLIENT_ID'));
      assert.equal(q.get('response_type'), 'code');
      assert.equal(q.get('redirect_uri'), callbackOf(provider));
      assert.equal(q.get('code_challenge_method'), 'S256');
      assert.equal(q.get('state'), q.get('code_challenge'), 'state is the challenge, as in Directus');
      if (provider === 'openid') assert.equal(q.get('nonce'), q.get('code_challenge'));
      const line = r.res.headers.getSetCookie().find((c) => c.startsWith(`${cookieName}=`));
      assert.ok(line, `no ${cookieName} cookie`);
      assert.match(line, /HttpOnly/i);
      assert.match(line, /SameSite=Lax/i);
      const claims = jwtPayload(a.cookie(cookieName));
      assert.equal(claims.iss, 'directus');
      assert.equal(claims.redirect, AFTER);
      assert.equal(claims.otp, '123456');
      assert.equal(claims.callbackUrl, callbackOf(provider));
      assert.equal(createHash('sha256').update(claims.verifier).digest('base64url'), q.get('code_challenge'), 'the verifier matches the challenge');
      assert.match(r.res.headers.get('cache-control') || '', /no-store/, 'Cache-Control');
    }
  });

  await step('a tampered state parameter: redirect with reason=INVALID_CREDENTIALS (both drivers), the state cookie cleared, no session', async () => {
    for (const provider of ['openid', 'oauth']) {
      const a = new Agent();
      const cb = new URL(await toCallback(a, provider, provider === 'openid' ? 'alice' : 'bob'));
      const s = cb.searchParams.get('state');
      cb.searchParams.set('state', (s[0] === 'A' ? 'B' : 'A') + s.slice(1));
      const r = await a.fetch(cb.toString());
      expectReason(r, AFTER, 'INVALID_CREDENTIALS', provider);
      expectStateCleared(r, provider === 'openid' ? 'openid.openid' : 'oauth2.oauth', provider);
    }
  });

  await step('a missing state cookie: openid 302 <PUBLIC_URL>/admin/login?reason=INVALID_CREDENTIALS, oauth2 401 INVALID_CREDENTIALS', async () => {
    for (const [provider, cookieName] of [['openid', 'openid.openid'], ['oauth', 'oauth2.oauth']]) {
      const a = new Agent();
      const cb = await toCallback(a, provider, provider === 'openid' ? 'alice' : 'bob');
      a.setCookie(cookieName, undefined);
      const r = await a.fetch(cb);
      if (provider === 'openid') expectReason(r, `${GS}/admin/login`, 'INVALID_CREDENTIALS', provider);
      else expectError({ ...r, body: JSON.parse(r.text) }, 401, 'INVALID_CREDENTIALS', provider);
    }
  });

  await step('a tampered state cookie (redirect changed, signature kept; or a forged signature): refused as a missing one', async () => {
    for (const [provider, cookieName] of [['openid', 'openid.openid'], ['oauth', 'oauth2.oauth']]) {
      for (const how of ['payload', 'signature']) {
        const a = new Agent();
        const cb = await toCallback(a, provider, provider === 'openid' ? 'alice' : 'bob');
        const [h, p, s] = a.cookie(cookieName).split('.');
        let forged;
        if (how === 'payload') {
          const claims = JSON.parse(Buffer.from(p, 'base64url'));
          claims.redirect = 'http://evil.example/';
          forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
        } else {
          const sig = createHmac('sha256', 'not-the-secret').update(`${h}.${p}`).digest('base64url');
          forged = `${h}.${p}.${sig}`;
        }
        a.setCookie(cookieName, forged);
        const r = await a.fetch(cb);
        if (provider === 'openid') expectReason(r, `${GS}/admin/login`, 'INVALID_CREDENTIALS', `${provider} ${how}`);
        else expectError({ ...r, body: JSON.parse(r.text) }, 401, 'INVALID_CREDENTIALS', `${provider} ${how}`);
        assert.ok(!(r.location || '').startsWith('http://evil.example'), 'followed the forged redirect');
      }
    }
  });

  await step('a replayed code (same callback, state cookie replayed): invalid_grant restarts with prompt=true; with prompt set, reason=INVALID_TOKEN', async () => {
    const detail = [];
    for (const [provider, cookieName, user] of [['openid', 'openid.openid', 'alice'], ['oauth', 'oauth2.oauth', 'bob']]) {
      const a = new Agent();
      const cb = await toCallback(a, provider, user);
      const state = a.cookie(cookieName);
      const first = await a.fetch(cb);
      assert.equal(first.status, 302, `first use: ${first.status} ${first.text.slice(0, 200)}`);
      assert.equal(first.location, `${AFTER}?via=${provider}`, 'first use lands on the redirect');
      assert.ok(a.cookie('directus_session_token'), 'first use: no session cookie');
      a.setCookie('directus_session_token', undefined);
      a.setCookie(cookieName, state);
      const again = await a.fetch(cb);
      assert.equal(again.status, 302, `replay: ${again.status} ${again.text.slice(0, 200)}`);
      const restart = new URL(again.location);
      assert.equal(restart.origin + restart.pathname.replace(/\/$/, ''), `${GS}/auth/login/${provider}`, `replay: restart at ${again.raw}`);
      assert.equal(restart.searchParams.get('prompt'), 'true');
      assert.equal(restart.searchParams.get('redirect'), `${AFTER}?via=${provider}`);
      assert.equal(a.cookie('directus_session_token'), undefined, 'replay: a session cookie was set');
      detail.push(`${provider}: ${again.raw}`);
      // The restart goes to the provider with prompt=consent; its code, replayed, fails for good.
      const b = new Agent();
      const cb2 = await toCallback(b, provider, user, { prompt: 'true' });
      const state2 = b.cookie(cookieName);
      assert.equal(jwtPayload(state2).prompt, true);
      const ok = await b.fetch(cb2);
      assert.equal(ok.status, 302);
      b.setCookie(cookieName, state2);
      expectReason(await b.fetch(cb2), AFTER, 'INVALID_TOKEN', `${provider} replay with prompt`);
    }
    return detail.join('; ');
  });

  await step('registration off (ALLOW_PUBLIC_REGISTRATION=false): an unknown user gets reason=INVALID_CREDENTIALS and no account', async () => {
    const a = new Agent();
    const r = await a.fetch(await toCallback(a, 'closed', 'carol'));
    expectReason(r, AFTER, 'INVALID_CREDENTIALS', 'closed');
    assert.deepEqual(await findUsers(DA, { email: { _eq: 'carol.sso@example.com' } }), []);
  });

  await step('an ID token signed with a key the issuer does not publish: reason=INVALID_CREDENTIALS and no account', async () => {
    const a = new Agent();
    const cb = await toCallback(a, 'rogue', 'bob');
    assert.ok(new URL(cb).searchParams.get('code'), 'the rogue issuer sent a code');
    const r = await a.fetch(cb);
    expectReason(r, AFTER, 'INVALID_CREDENTIALS', 'rogue');
    assert.deepEqual(await findUsers(DA, { provider: { _eq: 'rogue' } }), []);
  });

  await step('a provider that is down (closed port) or hangs: the start answers 302 /admin/login?reason=SERVICE_UNAVAILABLE within the timeout; other providers still work', async () => {
    const took = [];
    for (const provider of ['down', 'hang']) {
      const t0 = Date.now();
      const r = await new Agent().fetch(`${GS}/auth/login/${provider}?redirect=${encodeURIComponent(AFTER)}`, { timeout: 30000 });
      took.push(`${provider} ${Date.now() - t0} ms`);
      expectReason(r, `${GS}/admin/login`, 'SERVICE_UNAVAILABLE', provider);
    }
    const ok = await new Agent().fetch(`${GS}/auth/login/openid?redirect=${encodeURIComponent(AFTER)}`);
    assert.equal(ok.status, 302);
    assert.ok(ok.location.startsWith(`${ISSUER}/auth?`));
    expectStatus(await http(GS, '/server/ping'), 200);
    return took.join(', ');
  });

  await step('the callback by form_post (POST, urlencoded) answers 303 to ./callback with the fields as the query', async () => {
    const r = await new Agent().fetch(callbackOf('openid'), { method: 'POST', form: { code: 'abc', state: 'xyz', iss: ISSUER } });
    assert.equal(r.status, 303, `${r.status} ${r.text.slice(0, 200)}`);
    const u = new URL(r.location);
    assert.equal(u.origin + u.pathname, callbackOf('openid'));
    assert.equal(u.searchParams.get('code'), 'abc');
    assert.equal(u.searchParams.get('state'), 'xyz');
  });

  // ---------------------------------------------------------------- TFA through the provider, in Chromium
  await step('TFA: without otp on the start URL the browser is sent back with reason=INVALID_OTP and no session', async () => {
    assert.ok(tfa, 'TFA setup failed');
    await tfa.page.context().clearCookies({ name: 'directus_session_token' });
    await browserSignIn(tfa.page, `${GS}/auth/login/openid?redirect=${encodeURIComponent(`${AFTER}?via=tfa`)}`, 'dave', (u) => u.startsWith(APP));
    assert.equal(tfa.page.url(), `${AFTER}?reason=INVALID_OTP`);
    assert.equal(await sessionCookie(tfa.page), undefined);
  });

  await step('TFA: with otp=<code> on the start URL the browser lands on the redirect, signed in', async () => {
    assert.ok(tfa, 'TFA setup failed');
    const { otp } = await totp(tfa.secret, tfa.step);
    const target = `${AFTER}?via=tfa`;
    await browserSignIn(tfa.page, `${GS}/auth/login/openid?redirect=${encodeURIComponent(target)}&otp=${otp}`, 'dave', (u) => u.startsWith(APP));
    assert.equal(tfa.page.url(), target);
    assert.ok(await sessionCookie(tfa.page));
    const me = await meInBrowser(tfa.page);
    assert.equal(me.id, tfa.id);
  });
} finally {
  for (const ctx of contexts) await ctx.close().catch(() => {});
  await browser.close().catch(() => {});
  for (const s of held) s.destroy();
  hang.close();
  app.close();
}

finish(LABEL);
