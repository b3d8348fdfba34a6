// Two-factor authentication side by side: @directus/sdk's generateTwoFactorSecret,
// enableTwoFactor, disableTwoFactor and login with an otp against gatehouse (and, as a
// control, against the real Directus 12.4.0), then the same raw requests to both servers with
// status and body compared for every error of /users/me/tfa/{generate,enable,disable} and
// /users/:id/tfa/disable. TOTP codes are computed here (RFC 6238, HMAC-SHA1 from node:crypto).
// Users are made through Directus's API, one set per server, on the shared database.
//   D_URL=… G_URL=… ADMIN_EMAIL=… ADMIN_PASSWORD=… LABEL=sqlite node tfa.mjs

import { authentication, createDirectus, disableTwoFactor, enableTwoFactor, generateTwoFactorSecret, readMe, rest } from '@directus/sdk';
import { randomBytes } from 'node:crypto';
import { assert, env, expectError, expectStatus, finish, http, note, sleep, step, stepOf, totpAt, totpCode } from './lib.mjs';

const D = env('D_URL');
const G = env('G_URL');
const LABEL = `tfa-${env('LABEL', 'db')}`;
const ADMIN = { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') };
const PW = 'E2e-tfa-passw0rd!';
const uniq = randomBytes(3).toString('hex');
const ME = '$CURRENT_USER';
const name = (base) => (base === D ? 'Directus' : 'gatehouse');

// TOTP codes: e2e/lib.mjs.
const code = totpCode;
function wrongCode(secret) {
  const right = totpAt(secret, stepOf());
  const c = totpAt(secret, stepOf() + 10);
  return c === right ? String((Number(right) + 1) % 1e6).padStart(6, '0') : c;
}

// ---------------------------------------------------------------- helpers
async function login(base, email, extra = {}) {
  return http(base, '/auth/login', { json: { email, password: PW, mode: 'json', ...extra } });
}
async function token(base, email, password = PW) {
  const r = await http(base, '/auth/login', { json: { email, password, mode: 'json' } });
  expectStatus(r, 200, `login ${email} at ${name(base)}:`);
  return r.body.data.access_token;
}

/** A body with user ids replaced, so two users' answers compare. */
function normal(v, ids) {
  let s = JSON.stringify(v ?? null);
  for (const id of ids) s = s.split(id).join('<id>');
  return JSON.parse(s);
}

/** One request to both servers (each with its own user); status and body must agree. */
async function same(what, method, path, t, json, ids = []) {
  const opts = (tok) => ({ method, ...(tok ? { token: tok } : {}), ...(json !== undefined ? { json } : {}) });
  const d = await http(D, path.replace('<user>', t.dId ?? ''), opts(t.d));
  const g = await http(G, path.replace('<user>', t.gId ?? ''), opts(t.g));
  assert.equal(g.status, d.status, `${what}: gatehouse ${g.status} vs Directus ${d.status}\n  G: ${g.text.slice(0, 300)}\n  D: ${d.text.slice(0, 300)}`);
  assert.deepEqual(normal(g.body, ids), normal(d.body, ids), `${what}: bodies differ`);
  return d;
}

/** As `same`, but a difference is a NOTE (hostile inputs where gatehouse is stricter). */
async function compare(what, method, path, t, json) {
  const opts = (tok) => ({ method, token: tok, json });
  const d = await http(D, path, opts(t.d));
  const g = await http(G, path, opts(t.g));
  assert.ok(g.status < 500, `${what}: gatehouse answered ${g.status}: ${g.text.slice(0, 200)}`);
  const msg = (r) => `${r.status} ${r.body?.errors?.[0]?.message ?? r.text.slice(0, 80)}`;
  if (g.status !== d.status || JSON.stringify(g.body) !== JSON.stringify(d.body)) note(`${what}: Directus ${msg(d)}; gatehouse ${msg(g)}`);
}

// ---------------------------------------------------------------- fixtures
let DA;
const users = {};
const ok = await step('fixtures: a role (no app access: Directus without a licence counts app users as seats) with the recommended self-update permission (tfa_secret included), users made through Directus', async () => {
  DA = await token(D, ADMIN.email, ADMIN.password);
  const post = async (path, json) => {
    const r = await http(D, path, { json, token: DA });
    expectStatus(r, 200, `POST ${path}`);
    return r.body.data.id;
  };
  const fields = ['first_name', 'last_name', 'email', 'password', 'location', 'title', 'description', 'avatar', 'language', 'appearance', 'theme_light', 'theme_dark', 'theme_light_overrides', 'theme_dark_overrides', 'tfa_secret'];
  const policy = await post('/policies', { name: `e2e tfa ${uniq}`, app_access: false, admin_access: false });
  await post('/permissions', { policy, collection: 'directus_users', action: 'read', permissions: {}, fields: ['*'] });
  await post('/permissions', { policy, collection: 'directus_users', action: 'update', permissions: { id: { _eq: ME } }, fields });
  const role = await post('/roles', { name: `e2e tfa ${uniq}` });
  await post('/access', { role, policy });
  for (const key of ['sdkG', 'sdkD', 'rawG', 'rawD', 'crossG']) {
    const email = `tfa-${key.toLowerCase()}-${uniq}@example.com`;
    users[key] = { email, id: await post('/users', { email, password: PW, role, status: 'active' }) };
  }
  await sleep(1500); // gatehouse's per-node permission cache (GATEHOUSE_USER_CACHE_TTL)
  return `${Object.keys(users).length} users`;
});
if (!ok) finish(LABEL);

// ---------------------------------------------------------------- the SDK against each server
function sdk(base) {
  return createDirectus(base).with(authentication('json', { autoRefresh: false })).with(rest());
}

await step('SDK against Directus (control): generate, enable (null), login needs the otp, disable (null)', async () => {
  const c = sdk(D);
  const u = users.sdkD;
  await c.login({ email: u.email, password: PW });
  const g = await c.request(generateTwoFactorSecret(PW));
  assert.match(g.secret, /^[A-Z2-7]{16}$/);
  assert.ok(g.otpauth_url.startsWith('otpauth://totp/'), g.otpauth_url);
  const { otp } = await code(g.secret);
  assert.equal(await c.request(enableTwoFactor(g.secret, otp)), null);
  await assert.rejects(sdk(D).login({ email: u.email, password: PW }), (e) => e.errors?.[0]?.extensions?.code === 'INVALID_OTP');
  const again = sdk(D);
  await again.login({ email: u.email, password: PW }, { otp });
  note('Directus accepts a TOTP code again within its step (the enabling code logged in); gatehouse accepts each code once');
  assert.equal(await again.request(disableTwoFactor(otp)), null);
  await sdk(D).login({ email: u.email, password: PW });
});

let sdkSecret;
await step('SDK against gatehouse: generate, enable (recovery codes), login with otp, recovery code, disable', async () => {
  const c = sdk(G);
  const u = users.sdkG;
  await c.login({ email: u.email, password: PW });
  const g = await c.request(generateTwoFactorSecret(PW));
  assert.match(g.secret, /^[A-Z2-7]{16}$/);
  assert.equal(g.otpauth_url, `otpauth://totp/Directus:${encodeURIComponent(u.email)}?secret=${g.secret}&period=30&digits=6&algorithm=SHA1&issuer=Directus`);
  sdkSecret = g.secret;
  const first = await code(g.secret);
  const enabled = await c.request(enableTwoFactor(g.secret, first.otp));
  assert.ok(Array.isArray(enabled?.recovery_codes) && enabled.recovery_codes.length === 10, JSON.stringify(enabled));
  note('enable answers 200 {"data":{"recovery_codes":[…]}} where Directus answers 204; the SDK hands the codes to the caller instead of null');
  const bad = (e) => e.errors?.[0]?.extensions?.code === 'INVALID_OTP';
  await assert.rejects(sdk(G).login({ email: u.email, password: PW }), bad, 'no otp');
  await assert.rejects(sdk(G).login({ email: u.email, password: PW }, { otp: first.otp }), bad, 'the enabling code again');
  // A recovery code, once.
  const [r0, r1] = enabled.recovery_codes;
  const viaRecovery = sdk(G);
  await viaRecovery.login({ email: u.email, password: PW }, { otp: r0 });
  assert.equal((await viaRecovery.request(readMe({ fields: ['id'] }))).id, u.id);
  await assert.rejects(sdk(G).login({ email: u.email, password: PW }, { otp: r0 }), bad, 'a used recovery code');
  // The next step's code, once.
  const next = await code(g.secret, first.step);
  const viaOtp = sdk(G);
  await viaOtp.login({ email: u.email, password: PW }, { otp: next.otp });
  await assert.rejects(sdk(G).login({ email: u.email, password: PW }, { otp: next.otp }), bad, 'a replayed code');
  // Directus shares the database: it now asks this user for an otp too.
  const atD = await login(D, u.email);
  expectError(atD, 401, 'INVALID_OTP', 'Directus, no otp:');
  // Disable with a recovery code (gatehouse's addition; the SDK sends it as otp).
  assert.equal(await viaOtp.request(disableTwoFactor(r1)), null);
  await sdk(G).login({ email: u.email, password: PW });
  return 'enabled, 3 logins, disabled';
});

// ---------------------------------------------------------------- raw requests, side by side
const t = {};
const secrets = {};
const ids = () => [users.rawD.id, users.rawG.id];
const rawCodes = [];
/** Fresh tokens of the raw users (access tokens live 35 s here); once TFA is on, Directus's
 *  user logs in with the current code and gatehouse's with one of its recovery codes. */
async function fresh() {
  if (secrets.d) {
    const d = await login(D, users.rawD.email, { otp: (await code(secrets.d)).otp });
    expectStatus(d, 200, 'Directus login with otp:');
    t.d = d.body.data.access_token;
    const g = await login(G, users.rawG.email, { otp: rawCodes.shift() });
    expectStatus(g, 200, 'gatehouse login with a recovery code:');
    t.g = g.body.data.access_token;
  } else {
    t.d = await token(D, users.rawD.email);
    t.g = await token(G, users.rawG.email);
  }
  t.dId = users.rawD.id;
  t.gId = users.rawG.id;
  return t;
}
const anon = { d: undefined, g: undefined };

await step('generate: 401 without a token, password required, wrong password, trailing slash', async () => {
  await fresh();
  await same('generate, no token', 'POST', '/users/me/tfa/generate', anon, { password: PW });
  await same('generate {}', 'POST', '/users/me/tfa/generate', t, {});
  await same('generate password ""', 'POST', '/users/me/tfa/generate', t, { password: '' });
  await same('generate wrong password', 'POST', '/users/me/tfa/generate', t, { password: 'wrong' });
  await same('generate/ {}', 'POST', '/users/me/tfa/generate/', t, {});
  const d = await http(D, '/users/me/tfa/generate', { token: t.d, json: { password: PW } });
  const g = await http(G, '/users/me/tfa/generate', { token: t.g, json: { password: PW } });
  expectStatus(d, 200);
  expectStatus(g, 200);
  assert.deepEqual(Object.keys(g.body.data).sort(), Object.keys(d.body.data).sort());
  assert.deepEqual(Object.keys(g.body).sort(), Object.keys(d.body).sort());
  const shape = (r, email) => r.body.data.otpauth_url.replace(r.body.data.secret, '<s>').replace(encodeURIComponent(email), '<e>');
  assert.equal(shape(g, users.rawG.email), shape(d, users.rawD.email));
});

await step('enable and disable before TFA: required fields, wrong otp, no TFA enabled', async () => {
  await fresh();
  const secret = 'JBSWY3DPEHPK3PXP';
  await same('enable {}', 'POST', '/users/me/tfa/enable', t, {});
  await same('enable {otp}', 'POST', '/users/me/tfa/enable', t, { otp: '123456' });
  await same('enable {secret}', 'POST', '/users/me/tfa/enable', t, { secret });
  await same('enable/ {secret}', 'POST', '/users/me/tfa/enable/', t, { secret });
  await same('enable wrong otp', 'POST', '/users/me/tfa/enable', t, { secret, otp: wrongCode(secret) });
  await same('enable, no token', 'POST', '/users/me/tfa/enable', anon, { secret, otp: '123456' });
  await same('disable {}', 'POST', '/users/me/tfa/disable', t, {});
  await same('disable/ {}', 'POST', '/users/me/tfa/disable/', t, {});
  await same('disable, no TFA', 'POST', '/users/me/tfa/disable', t, { otp: '123456' }, ids());
  await same('disable, no token', 'POST', '/users/me/tfa/disable', anon, { otp: '123456' });
});

await step('hostile inputs: no 5xx from gatehouse; differences from Directus are noted', async () => {
  await fresh();
  const secret = 'JBSWY3DPEHPK3PXP';
  await compare('enable, malformed secret', 'POST', '/users/me/tfa/enable', t, { secret: 'not base32!!', otp: '123456' });
  await compare('enable, short secret', 'POST', '/users/me/tfa/enable', t, { secret: 'GEZDGNBV', otp: '123456' });
  await compare('enable, secret with NUL', 'POST', '/users/me/tfa/enable', t, { secret: `${secret}\u0000`, otp: '123456' });
  await compare('enable, secret a number', 'POST', '/users/me/tfa/enable', t, { secret: 12345, otp: '123456' });
  await compare('enable, otp a number', 'POST', '/users/me/tfa/enable', t, { secret, otp: 123456 });
  await compare('enable, otp an object', 'POST', '/users/me/tfa/enable', t, { secret, otp: { a: 1 } });
  await compare('enable, huge otp', 'POST', '/users/me/tfa/enable', t, { secret, otp: '1'.repeat(50000) });
  await compare('generate, password a number', 'POST', '/users/me/tfa/generate', t, { password: 12345 });
});

await step('enable at each server: Directus 204, gatehouse 200 with ten recovery codes', async () => {
  await fresh();
  for (const [base, tok, key] of [[D, t.d, 'd'], [G, t.g, 'g']]) {
    const gen = await http(base, '/users/me/tfa/generate', { token: tok, json: { password: PW } });
    expectStatus(gen, 200);
    secrets[key] = gen.body.data.secret;
    const { otp } = await code(secrets[key]);
    const r = await http(base, '/users/me/tfa/enable', { token: tok, json: { secret: secrets[key], otp } });
    if (base === D) {
      expectStatus(r, 204, 'Directus enable:');
      assert.equal(r.text, '');
    } else {
      expectStatus(r, 200, 'gatehouse enable:');
      assert.equal(r.body.data.recovery_codes.length, 10);
      rawCodes.push(...r.body.data.recovery_codes);
    }
  }
});

await step('after enabling: already set, wrong otp at disable, login order of checks', async () => {
  await fresh();
  const secret = 'JBSWY3DPEHPK3PXP';
  await same('generate, already set', 'POST', '/users/me/tfa/generate', t, { password: PW });
  await same('generate wrong password, already set', 'POST', '/users/me/tfa/generate', t, { password: 'wrong' });
  await same('enable, already set', 'POST', '/users/me/tfa/enable', t, { secret, otp: '123456' });
  await same('disable {}', 'POST', '/users/me/tfa/disable', t, {});
  const dd = await http(D, '/users/me/tfa/disable', { token: t.d, json: { otp: wrongCode(secrets.d) } });
  const gd = await http(G, '/users/me/tfa/disable', { token: t.g, json: { otp: wrongCode(secrets.g) } });
  assert.equal(gd.status, dd.status, `${gd.text} vs ${dd.text}`);
  assert.deepEqual(gd.body, dd.body);
  for (const [what, extra, pw] of [['wrong password, no otp', {}, 'wrong'], ['wrong password, wrong otp', { otp: '000000' }, 'wrong'], ['no otp', {}, PW], ['wrong otp', { otp: '000000' }, PW]]) {
    const d = await http(D, '/auth/login', { json: { email: users.rawD.email, password: pw, mode: 'json', ...extra } });
    const g = await http(G, '/auth/login', { json: { email: users.rawG.email, password: pw, mode: 'json', ...extra } });
    assert.equal(g.status, d.status, `login ${what}: ${g.text} vs ${d.text}`);
    assert.deepEqual(g.body, d.body, `login ${what}`);
  }
  // Each server honours the other's enrolment (one tfa_secret column).
  const { otp } = await code(secrets.d);
  expectStatus(await login(G, users.rawD.email, { otp }), 200, 'gatehouse login of a user enrolled at Directus:');
  expectError(await login(D, users.rawG.email), 401, 'INVALID_OTP', 'Directus login of a user enrolled at gatehouse:');
});

await step('admin disable: 401, 403 for non-admins, unknown and malformed ids, then 204 and no otp needed', async () => {
  await fresh();
  const admin = { d: DA, g: await token(G, ADMIN.email, ADMIN.password) };
  DA = await token(D, ADMIN.email, ADMIN.password);
  admin.d = DA;
  await same('admin disable, no token', 'POST', `/users/${users.rawG.id}/tfa/disable`, anon, {});
  await same('admin disable by a non-admin', 'POST', '/users/<user>/tfa/disable', t, {});
  await same('admin disable, unknown id', 'POST', `/users/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/tfa/disable`, admin, {});
  await same('admin disable, not a uuid', 'POST', '/users/not-a-uuid/tfa/disable', admin, {});
  const d = await http(D, `/users/${users.rawD.id}/tfa/disable`, { token: admin.d, json: {} });
  const g = await http(G, `/users/${users.rawG.id}/tfa/disable/`, { token: admin.g, json: {} });
  expectStatus(d, 204);
  expectStatus(g, 204);
  expectStatus(await login(D, users.rawD.email), 200);
  expectStatus(await login(G, users.rawG.email), 200);
});

await step('gatehouse only: recovery-code regeneration; Directus has no such route', async () => {
  const u = users.crossG;
  const tok = await token(G, u.email);
  const gen = await http(G, '/users/me/tfa/generate', { token: tok, json: { password: PW } });
  expectStatus(gen, 200);
  const first = await code(gen.body.data.secret);
  const en = await http(G, '/users/me/tfa/enable', { token: tok, json: { secret: gen.body.data.secret, otp: first.otp } });
  expectStatus(en, 200);
  // The enabling code cannot regenerate (it is spent); the next step's can, once.
  const re0 = await http(G, '/users/me/tfa/recovery-codes', { token: tok, json: { otp: first.otp } });
  expectError(re0, 400, 'INVALID_PAYLOAD');
  const next = await code(gen.body.data.secret, first.step);
  const tok2 = await token(G, ADMIN.email, ADMIN.password); // keep a live admin token for cleanup
  const userTok = (await login(G, u.email, { otp: en.body.data.recovery_codes[0] })).body.data.access_token;
  const re = await http(G, '/users/me/tfa/recovery-codes', { token: userTok, json: { otp: next.otp } });
  expectStatus(re, 200);
  assert.equal(re.body.data.recovery_codes.length, 10);
  expectError(await login(G, u.email, { otp: en.body.data.recovery_codes[1] }), 401, 'INVALID_OTP', 'an old recovery code:');
  expectStatus(await login(G, u.email, { otp: re.body.data.recovery_codes[0] }), 200, 'a new recovery code:');
  DA = await token(D, ADMIN.email, ADMIN.password);
  const d = await http(D, '/users/me/tfa/recovery-codes', { token: DA, json: { otp: '123456' } });
  note(`POST /users/me/tfa/recovery-codes is gatehouse's: Directus answers ${d.status} ${d.body?.errors?.[0]?.extensions?.code ?? ''}`);
  expectStatus(await http(G, `/users/${u.id}/tfa/disable`, { token: tok2, json: {} }), 204);
});

finish(LABEL);
