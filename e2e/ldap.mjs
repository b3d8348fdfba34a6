// LDAP logins against a real OpenLDAP (scripts/ldap.sh, started by scripts/e2e.sh): one
// gatehouse with three ldap providers on one directory, `corp` (plain ldap://, GROUP_DN,
// DEFAULT_ROLE_ID, SYNC_USER_INFO), `corptls` (StartTLS) and `corpssl` (ldaps://), both checking
// the server's certificate against the test CA. The directory is changed with ldapmodify,
// stopped and paused mid-run, and brought back.
//   G_URL=… LDAP_URL=… LDAP_SH=… LDAP_LOG=… DEFAULT_ROLE=… ADMIN_EMAIL=… ADMIN_PASSWORD=… node ldap.mjs
// Ends with `ldap-…: N passed, M failed`.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { authentication, createDirectus, readMe, rest } from '@directus/sdk';
import { assert, env, expectError, expectStatus, finish, http, jwtPayload, sleep, step, totpCode } from './lib.mjs';

const G = env('G_URL');
const LDAP_URL = env('LDAP_URL');
const LDAP_SH = env('LDAP_SH');
const LDAP_LOG = env('LDAP_LOG');
const DEFAULT_ROLE = env('DEFAULT_ROLE');
const LABEL = `ldap-${env('LABEL', 'db')}`;
const ADMIN = { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') };
const SUFFIX = 'dc=example,dc=org';
const TIMEOUT_MS = 2000; // AUTH_<NAME>_CLIENT__TIMEOUT in scripts/e2e.sh

const login = (provider, body) => http(G, `/auth/login/${provider}`, { json: body });
const ldapsh = (cmd) => execFileSync(LDAP_SH, [cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
function ldapmodify(ldif) {
  execFileSync('ldapmodify', ['-x', '-H', LDAP_URL, '-D', `cn=admin,${SUFFIX}`, '-w', 'adminpw'], { input: ldif });
}
const bindsFor = (dn) => readFileSync(LDAP_LOG, 'utf8').split('\n').filter((l) => l.includes(`BIND dn="${dn}"`)).length;

// A fresh admin token each time: ACCESS_TOKEN_TTL is short in the e2e runs.
async function admin() {
  const r = await http(G, '/auth/login', { json: { ...ADMIN, mode: 'json' } });
  expectStatus(r, 200, 'admin login:');
  return r.body.data.access_token;
}
async function userByDn(dn) {
  const r = await http(G, `/users?limit=-1&filter[provider][_neq]=default`, { token: await admin() });
  expectStatus(r, 200);
  return r.body.data.filter((u) => (u.external_identifier || '').toLowerCase() === dn.toLowerCase());
}
async function roleOf(dn) {
  const rows = await userByDn(dn);
  assert.equal(rows.length, 1, `one user for ${dn}, got ${rows.length}`);
  return rows[0].role;
}

// TOTP codes: e2e/lib.mjs.
const code = totpCode;

// ---------------------------------------------------------------- roles the suite needs
let adminsRole, editorsRole;
await step('setup: roles named like the directory groups, and the default role', async () => {
  const token = await admin();
  const role = async (body) => {
    const r = await http(G, '/roles', { token, json: body });
    expectStatus(r, 200, `create role ${body.name}:`);
    return r.body.data.id;
  };
  adminsRole = await role({ name: 'Admins' });
  editorsRole = await role({ name: 'Editors' });
  // The default role may update its users' own TFA secret (for the TFA step).
  const p = await http(G, '/policies', { token, json: { name: 'ldap default', app_access: true } });
  expectStatus(p, 200, 'policy:');
  const perm = await http(G, '/permissions', {
    token,
    json: { policy: p.body.data.id, collection: 'directus_users', action: 'update', permissions: { id: { _eq: '$CURRENT_USER' } }, fields: ['tfa_secret'] },
  });
  expectStatus(perm, 200, 'permission:');
  await role({ id: DEFAULT_ROLE, name: 'LDAP users', policies: [{ policy: p.body.data.id }] });
});

// ---------------------------------------------------------------- modes
await step('json mode: access_token, expires, refresh_token; the user is created from the entry', async () => {
  const r = await login('corp', { identifier: 'alice', password: 'alicepw', mode: 'json' });
  expectStatus(r, 200);
  assert.deepEqual(Object.keys(r.body.data), ['access_token', 'expires', 'refresh_token']);
  assert.equal(r.body.data.refresh_token.length, 64);
  assert.deepEqual(Object.keys(r.cookies), []);
  const me = await http(G, '/users/me?fields=id,email', { token: r.body.data.access_token });
  expectStatus(me, 200);
  const [row] = await userByDn(`uid=alice,ou=people,${SUFFIX}`);
  assert.equal(row.id, me.body.data.id);
  assert.equal(row.provider, 'corp');
  assert.equal(row.email, 'alice@example.org');
  assert.equal(row.first_name, 'Alice');
  assert.equal(row.last_name, 'Liddell');
  assert.equal(jwtPayload(r.body.data.access_token).id, row.id);
});

await step('cookie mode: the refresh cookie, and access_token in the body', async () => {
  const r = await login('corp', { identifier: 'alice', password: 'alicepw', mode: 'cookie' });
  expectStatus(r, 200);
  assert.deepEqual(Object.keys(r.body.data), ['access_token', 'expires']);
  const c = r.cookies.directus_refresh_token;
  assert.ok(c && c.value.length === 64 && 'httponly' in c.attrs, JSON.stringify(r.cookies));
  const again = await http(G, '/auth/refresh', { json: { mode: 'cookie' }, cookie: { directus_refresh_token: c.value } });
  expectStatus(again, 200, 'refresh:');
});

await step('session mode: the session cookie, and (unlike local logins) access_token in the body', async () => {
  const r = await login('corp', { identifier: 'alice', password: 'alicepw', mode: 'session' });
  expectStatus(r, 200);
  assert.deepEqual(Object.keys(r.body.data), ['access_token', 'expires']);
  assert.equal(r.body.data.expires, 86400000);
  assert.equal(r.cookies.directus_session_token.value, r.body.data.access_token);
  const me = await http(G, '/users/me?fields=id', { cookie: { directus_session_token: r.body.data.access_token } });
  expectStatus(me, 200);
});

await step('@directus/sdk logs in with {identifier, password} and provider', async () => {
  const client = createDirectus(G).with(authentication('json', { autoRefresh: false })).with(rest());
  await client.login({ identifier: 'alice', password: 'alicepw' }, { provider: 'corp' });
  const me = await client.request(readMe({ fields: ['id'] }));
  assert.ok(me.id);
});

await step('the form POST /auth/login with "mode":"ldap" reaches the ldap provider', async () => {
  // Several ldap providers are configured here: the form names one.
  const r = await http(G, '/auth/login', { json: { email: 'alice', password: 'alicepw', mode: 'ldap', provider: 'corp' } });
  expectStatus(r, 200);
  assert.ok(r.body.data.refresh_token && r.body.data.access_token);
  const none = await http(G, '/auth/login', { json: { email: 'alice', password: 'alicepw', mode: 'ldap' } });
  expectError(none, 400, 'INVALID_PAYLOAD');
});

// ---------------------------------------------------------------- transports
await step('StartTLS (corptls) and LDAPS (corpssl) with the certificate checked', async () => {
  const a = await login('corptls', { identifier: 'twin1', password: 'twinpw' });
  expectStatus(a, 200, 'StartTLS:');
  const b = await login('corpssl', { identifier: 'twin2', password: 'twinpw' });
  expectStatus(b, 200, 'LDAPS:');
  const opened = readFileSync(LDAP_LOG, 'utf8');
  assert.match(opened, /EXT oid=1\.3\.6\.1\.4\.1\.1466\.20037/, 'slapd saw a StartTLS request');
  // A user belongs to the provider that created it.
  expectError(await login('corp', { identifier: 'twin1', password: 'twinpw' }), 401, 'INVALID_CREDENTIALS', 'other provider:');
});

// ---------------------------------------------------------------- DNs and groups
await step('a DN with an escaped comma (cn=Smith\\, John) signs in, finds its group, stays one user', async () => {
  for (let i = 0; i < 2; i++) {
    expectStatus(await login('corp', { identifier: 'jsmith', password: 'smithpw' }), 200, `login ${i + 1}:`);
  }
  const r = await http(G, `/users?filter[email][_eq]=john.smith@example.org`, { token: await admin() });
  assert.equal(r.body.data.length, 1, r.text);
  const dn = r.body.data[0].external_identifier.toLowerCase();
  assert.ok([`cn=smith\\, john,ou=people,${SUFFIX}`, `cn=smith\\2c john,ou=people,${SUFFIX}`].includes(dn), dn);
  assert.equal(r.body.data[0].role, editorsRole);
});

await step('the role follows group membership, changed in the directory, at the next login', async () => {
  const alice = `uid=alice,ou=people,${SUFFIX}`;
  assert.equal(await roleOf(alice), adminsRole, 'alice starts in admins');
  ldapmodify(`dn: cn=admins,ou=groups,${SUFFIX}\nchangetype: modify\ndelete: member\nmember: ${alice}\n\n` +
    `dn: cn=editors,ou=groups,${SUFFIX}\nchangetype: modify\nadd: member\nmember: ${alice}\n`);
  expectStatus(await login('corp', { identifier: 'alice', password: 'alicepw' }), 200);
  assert.equal(await roleOf(alice), editorsRole, 'moved to editors');
  ldapmodify(`dn: cn=editors,ou=groups,${SUFFIX}\nchangetype: modify\ndelete: member\nmember: ${alice}\n`);
  expectStatus(await login('corp', { identifier: 'alice', password: 'alicepw' }), 200);
  assert.equal(await roleOf(alice), DEFAULT_ROLE, 'no group: DEFAULT_ROLE_ID');
  // SYNC_USER_INFO: a changed mail attribute reaches the user row.
  ldapmodify(`dn: ${alice}\nchangetype: modify\nreplace: mail\nmail: alice.liddell@example.org\n`);
  expectStatus(await login('corp', { identifier: 'alice', password: 'alicepw' }), 200);
  assert.equal((await userByDn(alice))[0].email, 'alice.liddell@example.org');
});

// ---------------------------------------------------------------- refusals
await step('wrong passwords and filter injections are INVALID_CREDENTIALS', async () => {
  for (const [identifier, password] of [
    ['alice', 'wrong'], ['bob', 'alicepw'], ['nobody', 'x'], ['*', 'alicepw'], ['*)(uid=*', 'alicepw'],
    ['admin)(|(uid=*', 'alicepw'], ['alice)(|(uid=*', 'alicepw'], ['al*', 'alicepw'], ['alice\u0000', 'alicepw'],
  ]) {
    expectError(await login('corp', { identifier, password }), 401, 'INVALID_CREDENTIALS', JSON.stringify(identifier));
  }
});

await step('an empty password never reaches a bind (Directus\'s 400 for "")', async () => {
  const dn = `uid=bob,ou=people,${SUFFIX}`;
  const before = bindsFor(dn);
  const r = await login('corp', { identifier: 'bob', password: '' });
  expectError(r, 400, 'INVALID_PAYLOAD');
  assert.equal(r.body.errors[0].extensions.reason, '"password" is not allowed to be empty');
  const f = await http(G, '/auth/login', { json: { email: 'bob', password: '', mode: 'ldap', provider: 'corp' } });
  expectError(f, 400, 'INVALID_PAYLOAD');
  await sleep(200);
  assert.equal(bindsFor(dn), before, 'no BIND for bob reached slapd');
  // The same check with the right password does bind (so the count above can move).
  expectStatus(await login('corp', { identifier: 'bob', password: 'bobpw' }), 200);
  await sleep(200);
  assert.ok(bindsFor(dn) > before, 'a real login binds');
});

// ---------------------------------------------------------------- TFA
await step('TFA applies to an LDAP user: INVALID_OTP without a code, 200 with one', async () => {
  const r = await login('corp', { identifier: 'carol', password: 'carolpw' });
  expectStatus(r, 200);
  const token = r.body.data.access_token;
  const g = await http(G, '/users/me/tfa/generate', { token, json: {} });
  expectStatus(g, 200, 'generate:');
  const { secret } = g.body.data;
  const first = await code(secret);
  const en = await http(G, '/users/me/tfa/enable', { token, json: { secret, otp: first.otp } });
  assert.ok([200, 204].includes(en.status), `enable: ${en.status} ${en.text}`);
  expectError(await login('corp', { identifier: 'carol', password: 'wrong' }), 401, 'INVALID_CREDENTIALS', 'wrong password first:');
  expectError(await login('corp', { identifier: 'carol', password: 'carolpw' }), 401, 'INVALID_OTP', 'no otp:');
  const next = await code(secret, first.step);
  const ok = await login('corp', { identifier: 'carol', password: 'carolpw', otp: next.otp });
  expectStatus(ok, 200, 'with otp:');
  return 'waited for a fresh TOTP step';
});

// ---------------------------------------------------------------- outages
async function timed(fn) {
  const t0 = Date.now();
  const r = await fn();
  return [r, Date.now() - t0];
}

await step('slapd stopped: 503 SERVICE_UNAVAILABLE without a hang; logins work again after a restart', async () => {
  expectStatus(await login('corp', { identifier: 'bob', password: 'bobpw' }), 200, 'warm pool:');
  ldapsh('stop');
  const [r, ms] = await timed(() => login('corp', { identifier: 'bob', password: 'bobpw' }));
  expectError(r, 503, 'SERVICE_UNAVAILABLE');
  assert.equal(r.body.errors[0].extensions.service, 'ldap');
  assert.ok(ms < 10 * TIMEOUT_MS, `answered in ${ms} ms`);
  ldapsh('restart');
  // The pooled connections died with the old server: the login reconnects by itself.
  expectStatus(await login('corp', { identifier: 'bob', password: 'bobpw' }), 200, 'after restart:');
  expectStatus(await login('corpssl', { identifier: 'twin2', password: 'twinpw' }), 200, 'LDAPS after restart:');
  return `503 in ${ms} ms`;
});

await step('slapd frozen (accepts, never answers): 503 within the timeout, then back', async () => {
  expectStatus(await login('corp', { identifier: 'bob', password: 'bobpw' }), 200, 'warm pool:');
  ldapsh('pause');
  let r, ms;
  try {
    [r, ms] = await timed(() => login('corp', { identifier: 'bob', password: 'bobpw' }));
  } finally {
    ldapsh('resume');
  }
  expectError(r, 503, 'SERVICE_UNAVAILABLE');
  assert.ok(ms < 10 * TIMEOUT_MS, `answered in ${ms} ms`);
  expectStatus(await login('corp', { identifier: 'bob', password: 'bobpw' }), 200, 'after resume:');
  return `503 in ${ms} ms`;
});

finish(LABEL);
