// Interop between gatehouse and a real Directus 12.4.0 on one database and one SECRET.
// Run by scripts/e2e.sh once per database (SQLite, PostgreSQL):
//   D_URL=http://127.0.0.1:… G_URL=http://127.0.0.1:… ADMIN_EMAIL=… ADMIN_PASSWORD=…
//   SNAP_BEFORE=… SNAP_AFTER=… LABEL=sqlite node interop.mjs
// Every step asserts statuses and bodies and prints PASS/FAIL; the last line is
// `<label>: N passed, M failed`. NOTE lines are behaviours known to differ (not counted).

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { assert, env, expectError, expectStatus, finish, http, jwtPayload, note, step } from './lib.mjs';

const D = env('D_URL');
const G = env('G_URL');
const LABEL = `interop-${env('LABEL', 'db')}`;
const ADMIN = { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') };
const PW = 'E2e-passw0rd!';
const uniq = randomBytes(3).toString('hex');

async function login(base, who, mode = 'json') {
  const r = await http(base, '/auth/login', { json: { email: who.email, password: who.password ?? PW, mode } });
  expectStatus(r, 200, `login ${who.email} (${mode}) at ${base === D ? 'Directus' : 'gatehouse'}:`);
  return r;
}
const sessionCookie = (r) => r.cookies.directus_session_token?.value;
const refreshCookie = (r) => r.cookies.directus_refresh_token?.value;
const me = (base, auth) => http(base, '/users/me', auth);
const whoAmI = async (base, auth) => {
  const r = await me(base, auth);
  expectStatus(r, 200, `GET /users/me at ${base === D ? 'Directus' : 'gatehouse'}:`);
  return r.body.data.id;
};

// ---------------------------------------------------------------- 0. gatehouse left Directus alone
await step('gatehouse started on the Directus database without changing any Directus table (definitions and rows)', async () => {
  const before = JSON.parse(readFileSync(env('SNAP_BEFORE'), 'utf8'));
  const after = JSON.parse(readFileSync(env('SNAP_AFTER'), 'utf8'));
  assert.ok(Object.keys(before.tables).length >= 20, `only ${Object.keys(before.tables).length} directus_* tables found`);
  assert.deepEqual(after.tables, before.tables, 'a Directus table definition changed');
  assert.deepEqual(after.rows, before.rows, 'rows of a Directus table changed');
  for (const name of Object.keys(before.indexes)) assert.ok(name in after.indexes, `index ${name} disappeared`);
  const added = Object.keys(after.indexes).filter((n) => !(n in before.indexes));
  for (const n of added) note(`gatehouse added an index on a Directus table: ${after.indexes[n]}`);
  if (before.journal_mode !== after.journal_mode) {
    note(`SQLite journal mode of the database file went from ${before.journal_mode} to ${after.journal_mode} (gatehouse opens SQLite in WAL mode)`);
  }
  return `${Object.keys(before.tables).length} tables compared`;
});

// ---------------------------------------------------------------- 1. fixtures made through Directus's API
let DA; // Directus admin access token
const ids = {};
const users = {
  admin: { ...ADMIN, what: 'the bootstrap admin' },
  editor: { email: `editor-${uniq}@example.com`, what: 'role without app access + app policy on the user' },
  nested: { email: `nested-${uniq}@example.com`, what: 'child role, app policy on the parent role' },
  plain: { email: `plain-${uniq}@example.com`, what: 'role with a policy without app access' },
  direct: { email: `direct-${uniq}@example.com`, what: 'no role, a policy without app access on the user' },
  norole: { email: `norole-${uniq}@example.com`, what: 'no role, no policy' },
};
// Unlicensed Directus 12 allows 3 users with app or admin access: admin, editor and nested.

const fixturesOk = await step('fixtures: policies, nested roles and users created through Directus\'s API', async () => {
  const r = await login(D, ADMIN);
  DA = r.body.data.access_token;
  users.admin.id = jwtPayload(DA).id;
  const post = async (path, json) => {
    const res = await http(D, path, { json, token: DA });
    expectStatus(res, 200, `POST ${path}`);
    return res.body.data.id;
  };
  ids.pApp = await post('/policies', { name: `e2e app ${uniq}`, icon: 'badge', app_access: true, admin_access: false, enforce_tfa: false });
  ids.pPlain = await post('/policies', { name: `e2e plain ${uniq}`, icon: 'badge', app_access: false, admin_access: false, enforce_tfa: false });
  ids.rPlain = await post('/roles', { name: `e2e plain ${uniq}` });
  ids.rParent = await post('/roles', { name: `e2e parent ${uniq}` });
  ids.rChild = await post('/roles', { name: `e2e child ${uniq}`, parent: ids.rParent });
  await post('/access', { role: ids.rPlain, policy: ids.pPlain });
  await post('/access', { role: ids.rParent, policy: ids.pApp });
  const mk = async (key, role) => {
    users[key].id = await post('/users', { email: users[key].email, password: PW, role, status: 'active' });
  };
  await mk('editor', ids.rPlain);
  await mk('nested', ids.rChild);
  await mk('plain', ids.rPlain);
  await mk('direct', null);
  await mk('norole', null);
  await post('/access', { user: users.editor.id, policy: ids.pApp });
  await post('/access', { user: users.direct.id, policy: ids.pPlain });
  return `${Object.keys(users).length - 1} users`;
});
if (!fixturesOk) finish(LABEL); // nothing below makes sense without them

// ---------------------------------------------------------------- 2. Directus users log in at gatehouse, all modes
const TTL = { json: null, session: null };
await step('users created in Directus log in at gatehouse in json, cookie and session modes', async () => {
  for (const [key, u] of Object.entries(users)) {
    const j = await login(G, u, 'json');
    assert.deepEqual(Object.keys(j.body.data).sort(), ['access_token', 'expires', 'refresh_token'], `${key} json body keys`);
    assert.match(j.body.data.refresh_token, /^[A-Za-z0-9_-]{64}$/);
    assert.equal(jwtPayload(j.body.data.access_token).id, u.id, `${key} token id`);
    assert.deepEqual(Object.keys(j.cookies), [], `${key} json mode set a cookie`);
    const c = await login(G, u, 'cookie');
    assert.deepEqual(Object.keys(c.body.data).sort(), ['access_token', 'expires'], `${key} cookie body keys`);
    assert.match(refreshCookie(c) ?? '', /^[A-Za-z0-9_-]{64}$/, `${key} refresh cookie`);
    const s = await login(G, u, 'session');
    assert.deepEqual(Object.keys(s.body.data), ['expires'], `${key} session body keys`);
    assert.equal(jwtPayload(sessionCookie(s)).id, u.id, `${key} session cookie`);
    TTL.json = j.body.data.expires;
    TTL.session = s.body.data.expires;
  }
  return `${Object.keys(users).length} users x 3 modes`;
});

await step('login answers match Directus: expires, body keys and cookie attributes per mode', async () => {
  for (const mode of ['json', 'cookie', 'session']) {
    const g = await login(G, users.editor, mode);
    const d = await login(D, users.editor, mode);
    assert.deepEqual(Object.keys(g.body.data).sort(), Object.keys(d.body.data).sort(), `${mode} body keys`);
    assert.equal(g.body.data.expires, d.body.data.expires, `${mode} expires`);
    assert.deepEqual(Object.keys(g.cookies), Object.keys(d.cookies), `${mode} cookie names`);
    for (const name of Object.keys(d.cookies)) {
      const strip = (a) => Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'expires'));
      assert.deepEqual(strip(g.cookies[name].attrs), strip(d.cookies[name].attrs), `${mode} ${name} attributes`);
    }
  }
});

await step('wrong password and unknown email: same status and body at gatehouse and Directus', async () => {
  for (const body of [
    { email: users.editor.email, password: 'wrong-password' },
    { email: `nobody-${uniq}@example.com`, password: PW },
  ]) {
    const g = await http(G, '/auth/login', { json: body });
    const d = await http(D, '/auth/login', { json: body });
    expectError(g, 401, 'INVALID_CREDENTIALS', 'gatehouse');
    assert.equal(g.status, d.status);
    assert.deepEqual(g.body, d.body);
  }
});

// ---------------------------------------------------------------- 3. role, policies, admin/app flags
await step('role, admin_access and app_access in gatehouse tokens match Directus (tokens and /policies/me/globals)', async () => {
  const rows = [];
  for (const [key, u] of Object.entries(users)) {
    const g = jwtPayload((await login(G, u)).body.data.access_token);
    const dTok = (await login(D, u)).body.data.access_token;
    const d = jwtPayload(dTok);
    for (const k of ['id', 'role', 'app_access', 'admin_access', 'iss']) assert.deepEqual(g[k], d[k], `${key}: claim ${k}`);
    assert.equal('enforce_tfa' in g, 'enforce_tfa' in d, `${key}: enforce_tfa presence`);
    assert.equal(g.exp - g.iat, d.exp - d.iat, `${key}: token lifetime`);
    const globals = await http(D, '/policies/me/globals', { token: dTok });
    expectStatus(globals, 200, `${key}: globals`);
    assert.equal(globals.body.data.app_access, g.app_access, `${key}: Directus globals app_access`);
    assert.equal(globals.body.data.admin_access, g.admin_access, `${key}: Directus globals admin_access`);
    rows.push(`${key}=${g.admin_access ? 'admin' : g.app_access ? 'app' : 'api'}`);
  }
  const flags = Object.fromEntries(rows.map((r) => r.split('=')));
  assert.deepEqual(flags, { admin: 'admin', editor: 'app', nested: 'app', plain: 'api', direct: 'api', norole: 'api' });
  return rows.join(' ');
});

await step('GET /users/me: the same fields with the same values at gatehouse and Directus, for the same token', async () => {
  const seen = [];
  for (const [key, u] of Object.entries(users)) {
    const tok = (await login(G, u)).body.data.access_token;
    const g = await me(G, { token: tok });
    const d = await me(D, { token: tok });
    expectStatus(g, 200, `${key} at gatehouse`);
    expectStatus(d, 200, `${key} at Directus`);
    const gd = g.body.data;
    const dd = d.body.data;
    for (const k of Object.keys(dd)) {
      assert.deepEqual(gd[k], dd[k], `${key}: field ${k}`);
    }
    // The same fields too: admin = every column + `policies`, app user = Directus's minimal
    // app permissions, no app access = the id only.
    assert.deepEqual(Object.keys(gd).sort(), Object.keys(dd).sort(), `${key} (${u.what}): the same fields`);
    seen.push(`${key}:${Object.keys(dd).length}/${Object.keys(gd).length}`);
  }
  return `fields Directus/gatehouse ${seen.join(' ')}`;
});

await step('roles and policies read through gatehouse\'s admin API equal Directus\'s', async () => {
  const GA = (await login(G, ADMIN)).body.data.access_token;
  const extras = new Set();
  const compare = async (path) => {
    const g = await http(G, path, { token: GA });
    const d = await http(D, path, { token: DA });
    expectStatus(g, 200, `gatehouse ${path}`);
    expectStatus(d, 200, `Directus ${path}`);
    // Alias lists compare as sets: rows with the same `sort` (here all null) come in key order
    // at gatehouse and in insertion order at Directus (docs/compatibility.md).
    const ALIASES = new Set(['children', 'policies', 'users', 'roles', 'permissions']);
    const norm = (k, v) => (ALIASES.has(k) && Array.isArray(v) ? [...v].sort() : v);
    for (const k of Object.keys(g.body.data)) assert.deepEqual(norm(k, g.body.data[k]), norm(k, d.body.data[k]), `${path}: ${k}`);
    for (const k of Object.keys(d.body.data)) if (!(k in g.body.data)) extras.add(k);
  };
  for (const id of [ids.rPlain, ids.rParent, ids.rChild]) await compare(`/roles/${id}`);
  for (const id of [ids.pApp, ids.pPlain]) await compare(`/policies/${id}`);
  if (extras.size) note(`GET /roles/<id> and /policies/<id>: Directus adds the relational alias fields ${[...extras].sort().join(', ')}; gatehouse does not`);
  return '3 roles (one nested), 2 policies';
});

// ---------------------------------------------------------------- 4. access tokens both ways
await step('an access token issued by gatehouse is accepted by Directus (GET /users/me)', async () => {
  for (const key of ['admin', 'editor', 'plain']) {
    const tok = (await login(G, users[key])).body.data.access_token;
    assert.equal(await whoAmI(D, { token: tok }), users[key].id, key);
  }
});

await step('an access token issued by Directus is accepted by gatehouse (GET /users/me)', async () => {
  for (const key of ['admin', 'editor', 'plain']) {
    const tok = (await login(D, users[key])).body.data.access_token;
    assert.equal(await whoAmI(G, { token: tok }), users[key].id, key);
  }
});

await step('a token signed with another SECRET is refused by both with 403 INVALID_TOKEN', async () => {
  const tok = (await login(G, users.editor)).body.data.access_token;
  const [h, p] = tok.split('.');
  const forged = `${h}.${p}.${Buffer.from(randomBytes(32)).toString('base64url')}`;
  const g = await me(G, { token: forged });
  const d = await me(D, { token: forged });
  expectError(g, 403, 'INVALID_TOKEN', 'gatehouse');
  assert.deepEqual(g.body, d.body);
});

// ---------------------------------------------------------------- 5. refresh both ways
await step('json: a Directus refresh token refreshes at gatehouse, and gatehouse\'s at Directus, back and forth', async () => {
  let rt = (await login(D, users.editor)).body.data.refresh_token;
  for (const [i, base] of [G, D, G, D].entries()) {
    const r = await http(base, '/auth/refresh', { json: { refresh_token: rt, mode: 'json' } });
    expectStatus(r, 200, `refresh #${i + 1} at ${base === D ? 'Directus' : 'gatehouse'}`);
    assert.deepEqual(Object.keys(r.body.data).sort(), ['access_token', 'expires', 'refresh_token']);
    assert.notEqual(r.body.data.refresh_token, rt, 'token rotated');
    assert.equal(r.body.data.expires, TTL.json);
    assert.equal(await whoAmI(base === D ? G : D, { token: r.body.data.access_token }), users.editor.id);
    rt = r.body.data.refresh_token;
  }
});

await step('cookie: the refresh cookie of one server refreshes at the other, back and forth', async () => {
  let rt = refreshCookie(await login(G, users.nested, 'cookie'));
  for (const [i, base] of [D, G, D, G].entries()) {
    const r = await http(base, '/auth/refresh', { json: { mode: 'cookie' }, cookie: { directus_refresh_token: rt } });
    expectStatus(r, 200, `refresh #${i + 1} at ${base === D ? 'Directus' : 'gatehouse'}`);
    assert.deepEqual(Object.keys(r.body.data).sort(), ['access_token', 'expires']);
    const next = refreshCookie(r);
    assert.match(next ?? '', /^[A-Za-z0-9_-]{64}$/);
    assert.notEqual(next, rt);
    assert.equal(await whoAmI(base === D ? G : D, { token: r.body.data.access_token }), users.nested.id);
    rt = next;
  }
});

await step('session: a session cookie of one server is accepted and refreshed by the other, back and forth', async () => {
  let jwt = sessionCookie(await login(D, users.admin, 'session'));
  for (const [i, base] of [G, D, G, D].entries()) {
    assert.equal(await whoAmI(base, { cookie: { directus_session_token: jwt } }), users.admin.id, `cookie accepted at #${i + 1}`);
    const r = await http(base, '/auth/refresh', { json: { mode: 'session' }, cookie: { directus_session_token: jwt } });
    expectStatus(r, 200, `refresh #${i + 1} at ${base === D ? 'Directus' : 'gatehouse'}`);
    assert.deepEqual(Object.keys(r.body.data), ['expires']);
    assert.equal(r.body.data.expires, TTL.session);
    const next = sessionCookie(r);
    assert.ok(next && next !== jwt, 'new session cookie');
    assert.notEqual(jwtPayload(next).session, jwtPayload(jwt).session, 'new session token inside');
    jwt = next;
  }
  assert.equal(await whoAmI(G, { cookie: { directus_session_token: jwt } }), users.admin.id);
});

await step('suspended user: refresh answers 401 USER_SUSPENDED at both, login 401 INVALID_CREDENTIALS', async () => {
  const u = users.plain;
  const rtG = (await login(D, u)).body.data.refresh_token;
  const rtD = (await login(G, u)).body.data.refresh_token;
  expectStatus(await http(D, `/users/${u.id}`, { method: 'PATCH', json: { status: 'suspended' }, token: DA }), 200);
  try {
    // Directus ends the user's sessions when the status changes; both refreshes must fail.
    const g = await http(G, '/auth/refresh', { json: { refresh_token: rtG } });
    const d = await http(D, '/auth/refresh', { json: { refresh_token: rtD } });
    assert.equal(g.status, 401);
    assert.deepEqual(g.body, d.body);
    const lg = await http(G, '/auth/login', { json: { email: u.email, password: PW } });
    const ld = await http(D, '/auth/login', { json: { email: u.email, password: PW } });
    expectError(lg, 401, 'INVALID_CREDENTIALS');
    assert.deepEqual(lg.body, ld.body);
    return `refresh -> ${g.body.errors[0].extensions.code}`;
  } finally {
    expectStatus(await http(D, `/users/${u.id}`, { method: 'PATCH', json: { status: 'active' }, token: DA }), 200);
  }
});

// ---------------------------------------------------------------- 6. static tokens
await step('a static token set in Directus works at gatehouse', async () => {
  const token = `e2e-static-${uniq}-${randomBytes(8).toString('hex')}`;
  expectStatus(await http(D, `/users/${users.editor.id}`, { method: 'PATCH', json: { token }, token: DA }), 200);
  assert.equal(await whoAmI(D, { token }), users.editor.id);
  assert.equal(await whoAmI(G, { token }), users.editor.id);
  const g = await me(G, { token: `${token}x` });
  expectError(g, 401, 'INVALID_CREDENTIALS', 'unknown static token');
  assert.deepEqual(g.body, (await me(D, { token: `${token}x` })).body);
});

await step('a static token set through gatehouse\'s admin API works at Directus', async () => {
  const GA = (await login(G, ADMIN)).body.data.access_token;
  const token = `e2e-static-g-${uniq}-${randomBytes(8).toString('hex')}`;
  const r = await http(G, `/users/${users.nested.id}`, { method: 'PATCH', json: { token }, token: GA });
  expectStatus(r, 200);
  assert.equal(r.body.data.token, '**********');
  assert.equal(await whoAmI(D, { token }), users.nested.id);
  assert.equal(await whoAmI(G, { token }), users.nested.id);
});

// ---------------------------------------------------------------- 7. logout at either ends the session at both
const logoutCases = [
  ['session', G, D],
  ['session', D, G],
  ['json', D, G],
  ['json', G, D],
  ['cookie', G, D],
  ['cookie', D, G],
];
for (const [mode, from, at] of logoutCases) {
  const name = (b) => (b === D ? 'Directus' : 'gatehouse');
  await step(`logout (${mode}) at ${name(at)} ends a session made at ${name(from)}, at both`, async () => {
    const u = users.editor;
    const l = await login(from, u, mode);
    const cred =
      mode === 'json'
        ? { json: { refresh_token: l.body.data.refresh_token, mode: 'json' } }
        : mode === 'cookie'
          ? { json: { mode: 'cookie' }, cookie: { directus_refresh_token: refreshCookie(l) } }
          : { json: { mode: 'session' }, cookie: { directus_session_token: sessionCookie(l) } };
    if (mode === 'session') assert.equal(await whoAmI(at, { cookie: cred.cookie }), u.id);
    const out = await http(at, '/auth/logout', cred);
    expectStatus(out, 204, 'logout');
    assert.equal(out.text, '');
    for (const base of [G, D]) {
      if (mode === 'session') {
        const r = await me(base, { cookie: cred.cookie });
        expectError(r, 401, 'INVALID_CREDENTIALS', `${name(base)} /users/me after logout`);
        const rf = await http(base, '/auth/refresh', cred);
        expectError(rf, 401, 'INVALID_CREDENTIALS', `${name(base)} refresh after logout`);
      } else {
        const rf = await http(base, '/auth/refresh', cred);
        expectError(rf, 401, 'INVALID_CREDENTIALS', `${name(base)} refresh after logout`);
      }
    }
  });
}

// ---------------------------------------------------------------- 8. what gatehouse writes, Directus reads
await step('a user created through gatehouse logs in at Directus (gatehouse\'s argon2 hash)', async () => {
  const GA = (await login(G, ADMIN)).body.data.access_token;
  const email = `made-at-gatehouse-${uniq}@example.com`;
  const r = await http(G, '/users', { json: { email, password: PW, role: ids.rPlain }, token: GA });
  expectStatus(r, 200);
  const id = r.body.data.id;
  const d = await login(D, { email });
  assert.equal(jwtPayload(d.body.data.access_token).id, id);
  const read = await http(D, `/users/${id}?fields=id,email,role,status,provider`, { token: DA });
  expectStatus(read, 200);
  assert.deepEqual(read.body.data, { id, email, role: ids.rPlain, status: 'active', provider: 'default' });
});

await step('Directus reads what a gatehouse login wrote: last_access, the activity row and the session row', async () => {
  const t0 = Date.now();
  const l = await login(G, users.nested, 'json');
  const u = await http(D, `/users/${users.nested.id}?fields=last_access`, { token: DA });
  expectStatus(u, 200);
  const last = Date.parse(u.body.data.last_access);
  assert.ok(Math.abs(last - t0) < 120000, `last_access ${u.body.data.last_access} is not now`);
  const a = await http(
    D,
    `/activity?filter[action][_eq]=login&filter[user][_eq]=${users.nested.id}&sort=-timestamp&limit=1&fields=action,user,timestamp,collection,item,ip`,
    { token: DA },
  );
  expectStatus(a, 200);
  const row = a.body.data[0];
  assert.ok(row, 'no login activity row');
  assert.equal(row.collection, 'directus_users');
  assert.equal(row.item, users.nested.id);
  assert.ok(Math.abs(Date.parse(row.timestamp) - t0) < 120000, `activity timestamp ${row.timestamp} is not now`);
  // The session row gatehouse wrote has an expiry Directus reads as a date in the future.
  const rt = l.body.data.refresh_token;
  const r = await http(D, '/auth/refresh', { json: { refresh_token: rt } });
  expectStatus(r, 200, 'Directus refresh of a gatehouse session row');
});

// ---------------------------------------------------------------- 8b. /metrics while it is off
await step('/metrics with METRICS_ENABLED off: the same 404 at both, with or without an admin token', async () => {
  const DT = (await login(D, ADMIN)).body.data.access_token;
  const GT = (await login(G, ADMIN)).body.data.access_token;
  const seen = [];
  for (const [path, admin] of [['/metrics', false], ['/metrics', true], ['/metrics/', false], ['/metrics?format=json', true]]) {
    const d = await http(D, path, admin ? { token: DT } : {});
    const g = await http(G, path, admin ? { token: GT } : {});
    assert.equal(g.status, d.status, `${path}: gatehouse ${g.status} ${g.text}, Directus ${d.status} ${d.text}`);
    assert.deepEqual(g.body, d.body, `${path}: body`);
    seen.push(`${path} ${d.status}`);
  }
  return seen.join(', ');
});

// ---------------------------------------------------------------- 9. known differences, observed
await step('observed: reusing a json refresh token that gatehouse just rotated, within its grace window', async () => {
  const rt = (await login(D, users.nested)).body.data.refresh_token;
  const first = await http(G, '/auth/refresh', { json: { refresh_token: rt } });
  expectStatus(first, 200);
  const againG = await http(G, '/auth/refresh', { json: { refresh_token: rt } });
  expectStatus(againG, 200, 'gatehouse second refresh inside the grace window');
  assert.equal(againG.body.data.refresh_token, first.body.data.refresh_token, 'same successor');
  const againD = await http(D, '/auth/refresh', { json: { refresh_token: rt } });
  if (againD.status !== 200) {
    note(`Directus refreshing (json) a token that gatehouse rotated moments ago answers ${againD.status} ${againD.body?.errors?.[0]?.extensions?.code ?? ''}: Directus's json rotation has no grace window`);
  } else {
    note(`Directus refreshing (json) a token that gatehouse rotated moments ago answers 200 (refresh token ${againD.body.data.refresh_token === first.body.data.refresh_token ? 'is gatehouse\'s successor' : 'is new'})`);
  }
  return `Directus answered ${againD.status}`;
});

finish(LABEL);
