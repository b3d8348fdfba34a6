// Account flows that send mail, end to end: a gatehouse with EMAIL_TRANSPORT=smtp mails a real
// SMTP server (e2e/smtp-sink.mjs, started here on SMTP_PORT); each test reads the mail, follows
// its link and finishes the flow, by hand and through @directus/sdk. A small HTTP server on
// APP_PORT stands for the site at PUBLIC_URL (http://127.0.0.1:APP_PORT/cms/): it serves the
// app's pages and passes /cms/users/* on to gatehouse, as a reverse proxy would. Then the
// same failing requests go to the real Directus (D_URL) and gatehouse, and their status and
// body are compared.
//   GA_URL=… D_URL=… SMTP_PORT=… APP_PORT=… SECRET=… ADMIN_EMAIL=… ADMIN_PASSWORD=… node accounts.mjs

import {
  acceptUserInvite,
  createDirectus,
  inviteUser,
  passwordRequest,
  passwordReset,
  registerUser,
  registerUserVerify,
  rest,
  withToken,
} from '@directus/sdk';
import { createHmac, randomBytes } from 'node:crypto';
import http_ from 'node:http';
import { assert, env, expectError, expectStatus, finish, http, note, step } from './lib.mjs';
import { startSmtpSink } from './smtp-sink.mjs';

const LABEL = `accounts-${process.env.LABEL || 'e2e'}`;
const G = env('GA_URL');
const D = env('D_URL');
const SECRET = env('SECRET');
const ADMIN_EMAIL = env('ADMIN_EMAIL');
const ADMIN_PASSWORD = env('ADMIN_PASSWORD');
const APP_PORT = Number(env('APP_PORT'));
const APP = `http://127.0.0.1:${APP_PORT}`;
const PUBLIC = `${APP}/cms`;
const uniq = () => randomBytes(4).toString('hex');

// ------------------------------------------------------------------ counterparts
const sink = await startSmtpSink(Number(env('SMTP_PORT')));
const appHits = [];
const app = http_.createServer(async (req, res) => {
  appHits.push(req.url);
  if (req.url.startsWith('/cms/users/')) {
    // The reverse proxy: /cms/users/* is gatehouse's /users/*.
    const r = await fetch(G + req.url.slice(4), { redirect: 'manual', signal: AbortSignal.timeout(10000) });
    const headers = {};
    for (const h of ['content-type', 'location']) if (r.headers.get(h)) headers[h] = r.headers.get(h);
    res.writeHead(r.status, headers);
    res.end(Buffer.from(await r.arrayBuffer()));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>app</title><p>${req.url.split('?')[0]}</p>`);
});
await new Promise((resolve) => app.listen(APP_PORT, '127.0.0.1', resolve));

/** The link of a mail: its html's first href that carries a token. */
function linkOf(mail) {
  const m = /href="([^"]*token=[^"]*)"/.exec(mail.text) || /(https?:\/\/[^\s"<>]+token=[A-Za-z0-9_.-]+[^\s"<>]*)/.exec(mail.text);
  assert.ok(m, `no link in the mail: ${mail.text.slice(0, 400)}`);
  return m[1].replace(/&amp;/g, '&');
}
const tokenOf = (link) => new URL(link, APP).searchParams.get('token');
const mailTo = (to, subject) => sink.waitFor((m) => m.to.includes(to) && m.subject === subject, 15000);

async function login(base, email, password) {
  return http(base, '/auth/login', { json: { email, password, mode: 'json' } });
}
async function adminToken(base) {
  const r = await login(base, ADMIN_EMAIL, ADMIN_PASSWORD);
  expectStatus(r, 200, `admin login at ${base}`);
  return r.body.data.access_token;
}

/** An HS256 JWT signed with SECRET, as Directus and gatehouse sign scoped tokens. */
function sign(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'directus', ...claims })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);

const sdk = createDirectus(G).with(rest());
let admin;
let role;

// ------------------------------------------------------------------ flows through gatehouse
await step('setup: admin, a role, registration on', async () => {
  admin = await adminToken(G);
  const r = await http(G, '/roles', { token: admin, json: { name: `Members ${uniq()}`, policies: [{ policy: { name: `Members ${uniq()}`, app_access: true, admin_access: false } }] } });
  expectStatus(r, 200, 'create role');
  role = r.body.data.id;
  const s = await http(G, '/settings', { method: 'PATCH', token: admin, json: { public_registration: true, public_registration_verify_email: true, public_registration_role: role } });
  expectStatus(s, 200, 'settings');
});

await step('password reset by hand: mail, link below PUBLIC_URL, old password fails, new works, token single use', async () => {
  const email = `reset-${uniq()}@example.com`;
  expectStatus(await http(G, '/users', { token: admin, json: { email, password: 'Old-passw0rd-1' } }), 200, 'create user');
  const session = await login(G, email, 'Old-passw0rd-1');
  expectStatus(session, 200);
  expectStatus(await http(G, '/auth/password/request', { json: { email } }), 204, 'request');
  const mail = await mailTo(email, 'Password Reset Request');
  const link = linkOf(mail);
  assert.ok(link.startsWith(`${PUBLIC}/admin/reset-password?token=`), link);
  // The user opens the link: the app's page, which posts the token with the new password.
  const page = await fetch(link);
  assert.equal(page.status, 200);
  const token = tokenOf(link);
  expectStatus(await http(G, '/auth/password/reset', { json: { token, password: 'New-passw0rd-2' } }), 204, 'reset');
  expectError(await login(G, email, 'Old-passw0rd-1'), 401, 'INVALID_CREDENTIALS', 'old password');
  expectStatus(await login(G, email, 'New-passw0rd-2'), 200, 'new password');
  expectError(await http(G, '/auth/password/reset', { json: { token, password: 'Third-passw0rd-3' } }), 403, 'FORBIDDEN', 'second use');
  const rt = await http(G, '/auth/refresh', { json: { refresh_token: session.body.data.refresh_token, mode: 'json' } });
  expectError(rt, 401, 'INVALID_CREDENTIALS', 'a session from before the reset');
  return `link ${link.replace(/token=[^&#]+/, 'token=…')}`;
});

await step('password reset with an allow-listed reset_url (query kept, fragment last)', async () => {
  const email = `reset-url-${uniq()}@example.com`;
  expectStatus(await http(G, '/users', { token: admin, json: { email, password: 'Old-passw0rd-1' } }), 200);
  const resetUrl = `${APP}/reset?lang=de#/form`;
  expectStatus(await http(G, '/auth/password/request', { json: { email, reset_url: resetUrl } }), 204);
  const link = linkOf(await mailTo(email, 'Password Reset Request'));
  assert.match(link, new RegExp(`^${APP}/reset\\?lang=de&token=[^&#]+#/form$`));
  expectStatus(await http(G, '/auth/password/reset', { json: { token: tokenOf(link), password: 'New-passw0rd-2' } }), 204);
  expectStatus(await login(G, email, 'New-passw0rd-2'), 200);
});

await step('password reset through @directus/sdk (passwordRequest, passwordReset)', async () => {
  const email = `reset-sdk-${uniq()}@example.com`;
  expectStatus(await http(G, '/users', { token: admin, json: { email, password: 'Old-passw0rd-1' } }), 200);
  assert.equal(await sdk.request(passwordRequest(email)), null);
  const token = tokenOf(linkOf(await mailTo(email, 'Password Reset Request')));
  assert.equal(await sdk.request(passwordReset(token, 'Sdk-passw0rd-2')), null);
  expectStatus(await login(G, email, 'Sdk-passw0rd-2'), 200);
  await assert.rejects(sdk.request(passwordReset(token, 'Sdk-passw0rd-3')), (e) => e.errors?.[0]?.extensions?.code === 'FORBIDDEN');
});

await step('invite by hand and through the SDK (inviteUser, acceptUserInvite); a second accept is INVALID_INVITE', async () => {
  const email = `invite-${uniq()}@example.com`;
  const r = await fetch(`${G}/users/invite`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ email, role }) });
  assert.equal(r.status, 204);
  const link = linkOf(await mailTo(email, "You've been invited"));
  assert.ok(link.startsWith(`${PUBLIC}/admin/accept-invite?token=`), link);
  assert.equal(await sdk.request(acceptUserInvite(tokenOf(link), 'Invited-passw0rd-1')), null);
  expectStatus(await login(G, email, 'Invited-passw0rd-1'), 200);
  await assert.rejects(sdk.request(acceptUserInvite(tokenOf(link), 'Other-passw0rd-2')), (e) => e.errors?.[0]?.extensions?.code === 'INVALID_INVITE');

  const email2 = `invite-sdk-${uniq()}@example.com`;
  assert.equal(await sdk.request(withToken(admin, inviteUser(email2, role, `${APP}/accept`))), null);
  const link2 = linkOf(await mailTo(email2, "You've been invited"));
  assert.ok(link2.startsWith(`${APP}/accept?token=`), link2);
  assert.equal(await sdk.request(acceptUserInvite(tokenOf(link2), 'Invited-passw0rd-3')), null);
  expectStatus(await login(G, email2, 'Invited-passw0rd-3'), 200);
});

await step('registration with verification: mail, the link through PUBLIC_URL, 302 to the user, then login', async () => {
  const email = `register-${uniq()}@example.com`;
  expectStatus(await http(G, '/users/register', { json: { email, password: 'Reg-passw0rd-1', first_name: 'Reg' } }), 204);
  expectError(await login(G, email, 'Reg-passw0rd-1'), 401, 'INVALID_CREDENTIALS', 'before verification');
  const mail = await mailTo(email, 'Verify your email address');
  const link = linkOf(mail);
  assert.ok(link.startsWith(`${PUBLIC}/users/register/verify-email?token=`), link);
  const r = await fetch(link, { redirect: 'manual' });
  assert.equal(r.status, 302);
  assert.match(r.headers.get('location'), new RegExp(`^${PUBLIC}/admin/users/[0-9a-f-]{36}$`));
  expectStatus(await login(G, email, 'Reg-passw0rd-1'), 200, 'after verification');
  const again = await http(G, `/users/register/verify-email?token=${tokenOf(link)}`);
  expectError(again, 400, 'INVALID_PAYLOAD', 'a spent link');
  return `302 to ${r.headers.get('location').replace(/[0-9a-f-]{36}$/, '<id>')}`;
});

await step('registration through the SDK (registerUser, registerUserVerify)', async () => {
  const email = `register-sdk-${uniq()}@example.com`;
  assert.equal(await sdk.request(registerUser(email, 'Reg-passw0rd-2', { verification_url: `${APP}/verify` })), null);
  const link = linkOf(await mailTo(email, 'Verify your email address'));
  assert.ok(link.startsWith(`${APP}/verify?token=`), link);
  // The SDK follows the 302 to the app's user page.
  const out = await sdk.request(registerUserVerify(tokenOf(link)));
  assert.match(String(out), /\/cms\/admin\/users\//);
  expectStatus(await login(G, email, 'Reg-passw0rd-2'), 200);
});

await step('an existing email registers as a new one would (204, no mail, account untouched)', async () => {
  const before = sink.messages.length;
  expectStatus(await http(G, '/users/register', { json: { email: ADMIN_EMAIL, password: 'Mallory-passw0rd-1' } }), 204);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(sink.messages.length, before, 'no mail for an existing active user');
  expectStatus(await login(G, ADMIN_EMAIL, ADMIN_PASSWORD), 200);
});

// ------------------------------------------------------------------ side by side with Directus
const dAdmin = await adminToken(D);
const gAccess = admin;
const same = [
  ['password request, disallowed reset_url', '/auth/password/request', { email: ADMIN_EMAIL, reset_url: 'https://evil.example/reset' }],
  ['password request, no email', '/auth/password/request', {}],
  ['password request, email not a string', '/auth/password/request', { email: 5 }],
  ['password request, unknown email', '/auth/password/request', { email: 'nobody@example.com' }],
  ['password reset, no token', '/auth/password/reset', { password: 'x' }],
  ['password reset, no password', '/auth/password/reset', { token: 'x' }],
  ['password reset, malformed token', '/auth/password/reset', { token: 'not.a.jwt', password: 'Passw0rd-x' }],
  ['password reset, expired token', '/auth/password/reset', { token: sign({ email: ADMIN_EMAIL, scope: 'password-reset', hash: '0', iat: now() - 100, exp: now() - 10 }), password: 'Passw0rd-x' }],
  ['password reset, wrong scope', '/auth/password/reset', { token: sign({ email: ADMIN_EMAIL, scope: 'invite', iat: now(), exp: now() + 60 }), password: 'Passw0rd-x' }],
  ['password reset, stale hash', '/auth/password/reset', { token: sign({ email: ADMIN_EMAIL, scope: 'password-reset', hash: '1', iat: now(), exp: now() + 60 }), password: 'Passw0rd-x' }],
  ['password reset, an access token', '/auth/password/reset', (who) => ({ token: who === 'd' ? dAdmin : gAccess, password: 'Passw0rd-x' })],
  ['invite accept, no token', '/users/invite/accept', { password: 'x' }],
  ['invite accept, malformed token', '/users/invite/accept', { token: 'x', password: 'Passw0rd-x' }],
  ['invite accept, wrong scope', '/users/invite/accept', { token: sign({ email: ADMIN_EMAIL, scope: 'password-reset', hash: '0', iat: now(), exp: now() + 60 }), password: 'Passw0rd-x' }],
  ['invite accept, not invited', '/users/invite/accept', { token: sign({ email: ADMIN_EMAIL, scope: 'invite', iat: now(), exp: now() + 60 }), password: 'Passw0rd-x' }],
  ['invite accept, expired', '/users/invite/accept', { token: sign({ email: ADMIN_EMAIL, scope: 'invite', iat: now() - 100, exp: now() - 10 }), password: 'Passw0rd-x' }],
  ['register, not an email', '/users/register', { email: 'nope', password: 'x' }],
  ['register, no password', '/users/register', { email: 'a@example.com' }],
  ['register, empty password', '/users/register', { email: 'a@example.com', password: '' }],
  ['register, an unknown field', '/users/register', { email: 'a@example.com', password: 'x', role: 'admin' }],
  ['invite, no email', '/users/invite', { role: '00000000-0000-4000-8000-000000000000' }, true],
  ['invite, not an email', '/users/invite', { email: 'nope', role: '00000000-0000-4000-8000-000000000000' }, true],
  ['invite, a list with a number', '/users/invite', { email: ['a@example.com', 3], role: '00000000-0000-4000-8000-000000000000' }, true],
  ['invite, an object', '/users/invite', { email: { a: 1 }, role: '00000000-0000-4000-8000-000000000000' }, true],
  ['invite, role not a v4 uuid', '/users/invite', { email: 'a@example.com', role: '00000000-0000-1000-8000-000000000000' }, true],
  ['invite, invite_url not a uri', '/users/invite', { email: 'a@example.com', role: '00000000-0000-4000-8000-000000000000', invite_url: 'no uri' }, true],
  ['invite, disallowed invite_url', '/users/invite', { email: `new-${uniq()}@example.com`, role: '00000000-0000-4000-8000-000000000000', invite_url: 'https://evil.example/accept' }, true],
];
for (const [name, path, body, asAdmin] of same) {
  await step(`same as Directus: ${name}`, async () => {
    const d = await http(D, path, { json: typeof body === 'function' ? body('d') : body, token: asAdmin ? dAdmin : undefined });
    const g = await http(G, path, { json: typeof body === 'function' ? body('g') : body, token: asAdmin ? admin : undefined });
    assert.equal(g.status, d.status, `status: Directus ${d.status} ${d.text.slice(0, 200)}, gatehouse ${g.status} ${g.text.slice(0, 200)}`);
    assert.deepEqual(g.body, d.body, 'body');
    return `${d.status}${d.body?.errors ? ` ${d.body.errors[0].extensions.code}` : ''}`;
  });
}

await step('same as Directus: register with registration off (403)', async () => {
  const s = await http(G, '/settings', { method: 'PATCH', token: admin, json: { public_registration: false } });
  expectStatus(s, 200);
  const body = { email: `off-${uniq()}@example.com`, password: 'Passw0rd-x' };
  const d = await http(D, '/users/register', { json: body });
  const g = await http(G, '/users/register', { json: body });
  expectError(d, 403, 'FORBIDDEN', 'Directus');
  assert.equal(g.status, d.status);
  assert.deepEqual(g.body, d.body);
});

await step('same as Directus: verify-email without a usable token', async () => {
  const out = [];
  for (const q of ['?token=', '?token=a&token=b', '?token=not.a.jwt', `?token=${sign({ email: ADMIN_EMAIL, scope: 'pending-registration', iat: now(), exp: now() + 60 })}`]) {
    const d = await http(D, `/users/register/verify-email${q}`);
    const g = await http(G, `/users/register/verify-email${q}`);
    assert.equal(g.status, d.status, `${q}: Directus ${d.status} ${d.text.slice(0, 200)}, gatehouse ${g.status} ${g.text.slice(0, 200)}`);
    if (d.status === 302) {
      // Directus writes the location root-relative; gatehouse below PUBLIC_URL's path.
      assert.equal(d.res.headers.get('location'), '/admin/login');
      assert.equal(g.res.headers.get('location'), `${PUBLIC}/admin/login`);
    } else assert.deepEqual(g.body, d.body, q);
    out.push(d.status);
  }
  const d = await http(D, '/users/register/verify-email');
  const g = await http(G, '/users/register/verify-email');
  if (d.status !== g.status) note(`verify-email without token: Directus ${d.status} ${d.text.slice(0, 120)}, gatehouse ${g.status} ${g.text.slice(0, 120)}`);
  return out.join(', ');
});

await step('same as Directus: invite without admin rights', async () => {
  const body = { email: `nobody-${uniq()}@example.com`, role };
  const d = await http(D, '/users/invite', { json: body });
  const g = await http(G, '/users/invite', { json: body });
  if (d.status !== g.status) note(`POST /users/invite without a token: Directus ${d.status} ${d.text.slice(0, 120)}, gatehouse ${g.status} ${g.body?.errors?.[0]?.extensions?.code} (deliberate, docs/compatibility.md)`);
  expectError(g, 403, 'FORBIDDEN');
});

await step('same as Directus: /server/info for an anonymous caller (the project fields a login page reads)', async () => {
  const d = await http(D, '/server/info');
  const g = await http(G, '/server/info');
  expectStatus(d, 200);
  expectStatus(g, 200);
  assert.deepEqual(Object.keys(g.body.data.project), Object.keys(d.body.data.project), 'project fields');
  for (const k of ['public_registration', 'public_registration_verify_email', 'default_language', 'default_appearance']) {
    assert.equal(typeof g.body.data.project[k], typeof d.body.data.project[k], k);
  }
  const extra = Object.keys(d.body.data).filter((k) => !(k in g.body.data));
  if (extra.length) note(`/server/info (anonymous): Directus also answers ${extra.map((k) => `${k}=${JSON.stringify(d.body.data[k]).slice(0, 80)}`).join(', ')}`);
  const da = await http(D, '/server/info', { token: dAdmin });
  const ga = await http(G, '/server/info', { token: admin });
  assert.deepEqual(ga.body.data.rateLimit, da.body.data.rateLimit, 'rateLimit');
  assert.deepEqual(ga.body.data.rateLimitGlobal, da.body.data.rateLimitGlobal, 'rateLimitGlobal');
  const adminExtra = Object.keys(da.body.data).filter((k) => !(k in ga.body.data));
  if (adminExtra.length) note(`/server/info (logged in): Directus also answers ${adminExtra.join(', ')}`);
});

await sink.close();
await new Promise((r) => app.close(r));
finish(LABEL);
