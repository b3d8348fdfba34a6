// The Directus Data Studio logs in through gatehouse: nginx on N_URL sends /auth/* to gatehouse
// and everything else to Directus (one database, one SECRET). Headless Debian Chromium, driven
// by playwright-core, opens /admin/login, signs in, reaches the content module, reloads,
// and signs out from the app.
//   N_URL=… D_URL=… G_URL=… ADMIN_EMAIL=… ADMIN_PASSWORD=… SHOT_DIR=… node browser.mjs
// Leaves $SHOT_DIR/studio-content.png (the logged-in app). Ends with `browser-…: N passed, M failed`.

import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert, env, finish, http, jwtPayload, step } from './lib.mjs';

const N = env('N_URL');
const D = env('D_URL');
const G = env('G_URL');
const LABEL = `browser-${env('LABEL', 'db')}`;
const EMAIL = env('ADMIN_EMAIL');
const PASSWORD = env('ADMIN_PASSWORD');
const SHOT_DIR = env('SHOT_DIR', '.');
mkdirSync(SHOT_DIR, { recursive: true });

const profile = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'gatehouse-e2e-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
ctx.setDefaultTimeout(30000);
const page = ctx.pages()[0] || (await ctx.newPage());

// Every /auth/* call the app makes, with its answer (nginx sends them to gatehouse).
const authCalls = [];
page.on('response', (res) => {
  const u = new URL(res.url());
  if (u.origin === N && (u.pathname === '/auth' || u.pathname.startsWith('/auth/'))) {
    authCalls.push(`${res.request().method()} ${u.pathname} ${res.status()}`);
  }
});
const consoleErrors = [];
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text().slice(0, 200)));

const T0 = Date.now();
const mark = (what) => process.env.E2E_DEBUG && console.log(`  .. ${what} at ${Date.now() - T0} ms`);
const sessionCookie = async () => (await ctx.cookies(N)).find((c) => c.name === 'directus_session_token');
const onContent = () => /\/admin\/content(\/|$|\?)/.test(new URL(page.url()).pathname + '/');
let loggedInCookie;

try {
  await step('the proxy routes /auth/* to gatehouse and the rest to Directus', async () => {
    const a = await http(N, '/auth');
    assert.equal(a.status, 200);
    assert.deepEqual(a.body, (await http(G, '/auth')).body);
    const info = await http(N, '/server/info');
    assert.equal(info.status, 200);
    assert.ok(info.res.headers.get('x-powered-by')?.includes('Directus'), 'server/info not from Directus');
  });

  await step('/admin/login shows the Data Studio sign-in form', async () => {
    await page.goto(`${N}/admin/login`, { waitUntil: 'domcontentloaded' });
    await page.locator('input[type="email"]').waitFor({ state: 'visible' });
    await page.locator('input[type="password"]').waitFor({ state: 'visible' });
    await page.screenshot({ path: join(SHOT_DIR, 'studio-login.png') });
  });

  await step('signing in with email and password (answered by gatehouse) reaches the content module', async () => {
    await page.fill('input[type="email"]', EMAIL);
    await page.fill('input[type="password"]', PASSWORD);
    const loginRes = page.waitForResponse((r) => r.url() === `${N}/auth/login` && r.request().method() === 'POST');
    await page.locator('button[type="submit"]').click();
    const res = await loginRes;
    mark('login answered');
    assert.equal(res.status(), 200, `POST /auth/login answered ${res.status()}`);
    const body = await res.json();
    const sentMode = JSON.parse(res.request().postData() || '{}').mode;
    await page.waitForURL((u) => u.pathname.startsWith('/admin/') && !u.pathname.startsWith('/admin/login'), { timeout: 30000 });
    mark('left the login page');
    if (!onContent()) await page.goto(`${N}/admin/content`, { waitUntil: 'domcontentloaded' });
    await page.waitForURL(/\/admin\/content/);
    await page.locator('#main-content, .module-bar, .private-view').first().waitFor({ state: 'visible' });
    mark('content module visible');
    await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
    mark('network idle');
    // Unlicensed Directus 12 asks once for a license key: "Skip" (the Core plan).
    const skip = page.getByRole('button', { name: 'Skip' });
    const licenseDialog = await skip.waitFor({ state: 'visible', timeout: 8000 }).then(() => true, () => false);
    if (licenseDialog) {
      await skip.click();
      await skip.waitFor({ state: 'hidden', timeout: 5000 }).catch(() => {});
      await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
    }
    loggedInCookie = await sessionCookie();
    assert.ok(loggedInCookie, 'no session cookie in the browser');
    assert.equal(loggedInCookie.httpOnly, true);
    assert.equal(jwtPayload(loggedInCookie.value).admin_access, true);
    await page.screenshot({ path: join(SHOT_DIR, 'studio-content.png') });
    return `login mode=${sentMode}, body keys=${Object.keys(body.data || {})}, at ${new URL(page.url()).pathname}${licenseDialog ? ', license dialog skipped' : ''}`;
  });

  await step('the session cookie from gatehouse is accepted by Directus and gatehouse', async () => {
    const cookie = { directus_session_token: loggedInCookie.value };
    const d = await http(D, '/users/me?fields=email', { cookie });
    const g = await http(G, '/users/me?fields=email', { cookie });
    assert.equal(d.status, 200);
    assert.equal(g.status, 200);
    assert.equal(d.body.data.email, EMAIL);
    assert.equal(g.body.data.email, EMAIL);
  });

  await step('reloading the page keeps the session (still in the content module)', async () => {
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
    await page.locator('#main-content, .module-bar, .private-view').first().waitFor({ state: 'visible' });
    assert.ok(onContent(), `after reload at ${page.url()}`);
    const c = await sessionCookie();
    assert.ok(c, 'session cookie gone after reload');
    const me = await http(N, '/users/me?fields=email', { cookie: { directus_session_token: c.value } });
    assert.equal(me.status, 200);
    loggedInCookie = c;
    await page.screenshot({ path: join(SHOT_DIR, 'studio-content-reloaded.png') });
    return `at ${new URL(page.url()).pathname}`;
  });

  await step('the app refreshes its session through gatehouse (POST /auth/refresh, mode session)', async () => {
    const res = await page.evaluate(async () => {
      const r = await fetch('/auth/refresh', {
        method: 'POST', credentials: 'include',
        headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'session' }),
      });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body.data), ['expires']);
    const c = await sessionCookie();
    assert.ok(c && c.value !== loggedInCookie.value, 'session cookie replaced');
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.locator('#main-content, .module-bar, .private-view').first().waitFor({ state: 'visible' });
    assert.ok(onContent(), `after refresh + reload at ${page.url()}`);
    loggedInCookie = c;
  });

  await step('signing out from the app ends the session at gatehouse and Directus', async () => {
    // The app refreshes its session on every load: take the cookie it holds now.
    loggedInCookie = await sessionCookie();
    const logoutRes = page.waitForResponse((r) => r.url() === `${N}/auth/logout`, { timeout: 30000 });
    // The module bar's sign-out button opens a confirmation whose "Sign Out" leads to /logout.
    let how = 'the module bar\'s Sign Out button';
    try {
      await page.locator('.module-bar-avatar').hover({ timeout: 10000 });
      await page.locator('.sign-out-wrapper button').first().click({ timeout: 10000 });
      await page.locator('a[href$="/logout"]').first().click({ timeout: 10000 });
    } catch (e) {
      how = `the /admin/logout route (the button was not found: ${e.message.split('\n')[0]})`;
      await page.goto(`${N}/admin/logout`);
    }
    const res = await logoutRes;
    assert.equal(res.status(), 204, `POST /auth/logout answered ${res.status()}`);
    await page.waitForURL(/\/admin\/login/);
    const c = await sessionCookie();
    assert.ok(!c || !c.value, 'session cookie still set after sign-out');
    const cookie = { directus_session_token: loggedInCookie.value };
    for (const [name, base] of [['Directus', D], ['gatehouse', G]]) {
      const r = await http(base, '/users/me', { cookie });
      assert.equal(r.status, 401, `${name} still accepts the old session cookie`);
    }
    await page.goto(`${N}/admin/content`, { waitUntil: 'domcontentloaded' });
    await page.waitForURL(/\/admin\/login/);
    await page.screenshot({ path: join(SHOT_DIR, 'studio-signed-out.png') });
    return `via ${how}, back at ${new URL(page.url()).pathname}`;
  });
} finally {
  console.log(`auth calls seen: ${authCalls.join(', ') || 'none'}`);
  if (consoleErrors.length) console.log(`browser console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
  console.log(`screenshots in ${SHOT_DIR}: studio-login.png, studio-content.png, studio-content-reloaded.png, studio-signed-out.png`);
  await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

finish(LABEL);
