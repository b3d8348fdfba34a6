// Scale-out: three gatehouse processes on one PostgreSQL database, sharing nothing else, each
// with the per-node cache of GATEHOUSE_USER_CACHE_TTL (CACHE_TTL_MS here). A session started on
// one node, refreshed on the second and ended on the third is gone on all three (at once where
// the logout ran, within the TTL elsewhere); 30 refreshes of one token sent at the same moment
// to the three nodes all get the same successor, as docs/compatibility.md promises ("Refresh
// rotation has a grace window in every mode"), and the database holds exactly one; a role
// change made through one node shows on the others within the TTL.
//   NODE_URLS=a,b,c CACHE_TTL_MS=1000 DB_URL=postgres://… ADMIN_EMAIL=… ADMIN_PASSWORD=…
//   node nodes.mjs
// Ends with `nodes-…: N passed, M failed`.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { assert, env, expectError, expectStatus, finish, http, sleep, step } from './lib.mjs';

const NODES = env('NODE_URLS').split(',');
const TTL = Number(env('CACHE_TTL_MS'));
const DB_URL = env('DB_URL');
const EMAIL = env('ADMIN_EMAIL');
const PASSWORD = env('ADMIN_PASSWORD');
const LABEL = `nodes-${env('LABEL', 'db')}`;
const uniq = randomBytes(4).toString('hex');
const [A, B, C] = NODES;
const NAME = { [A]: 'node 1', [B]: 'node 2', [C]: 'node 3' };
assert.equal(NODES.length, 3, 'three nodes');
// Past the TTL, an entry cached before a write is gone: wait that long, plus scheduling slack.
const afterTtl = () => sleep(TTL + 300);

const db = new pg.Client({ connectionString: DB_URL });
await db.connect();
process.on('exit', () => db.end().catch(() => {}));

const login = async (base, email, password, mode = 'json') => {
  const r = await http(base, '/auth/login', { json: { email, password, mode } });
  expectStatus(r, 200, `login on ${NAME[base]}:`);
  return r;
};
const sessionCookie = (r) => {
  const c = r.cookies.directus_session_token;
  assert.ok(c && c.value, `no session cookie: ${r.res.headers.getSetCookie().join(' | ')}`);
  return { directus_session_token: c.value };
};
const rowsOf = async (user) =>
  (await db.query('SELECT token, next_token FROM directus_sessions WHERE "user" = $1', [user])).rows;

let admin;
await step('setup: an admin token and the Administrator role', async () => {
  const l = await login(A, EMAIL, PASSWORD);
  admin = { token: l.body.data.access_token };
  const me = await http(A, '/users/me?fields=id,role.id', { token: admin.token });
  expectStatus(me, 200);
  admin.id = me.body.data.id;
  admin.role = me.body.data.role.id;
});

/** A new active user with its own password, created through node 1. */
async function newUser(tag, role = null) {
  const u = { email: `${tag}-${uniq}@example.com`, password: `N0des-${tag}-${uniq}` };
  const r = await http(A, '/users', { token: admin.token, json: { email: u.email, password: u.password, role, status: 'active' } });
  expectStatus(r, 200, `POST /users ${tag}:`);
  u.id = r.body.data.id;
  return u;
}

await step('json mode: login on node 1, refresh on node 2, logout on node 3: gone everywhere', async () => {
  const u = await newUser('json');
  const l = await login(A, u.email, u.password);
  const first = l.body.data.refresh_token;
  const r = await http(B, '/auth/refresh', { json: { refresh_token: first, mode: 'json' } });
  expectStatus(r, 200, 'refresh on node 2:');
  const second = r.body.data.refresh_token;
  assert.notEqual(second, first);
  assert.deepEqual((await rowsOf(u.id)).map((x) => x.token).sort(), [first, second].sort(), 'rows after the refresh');
  const out = await http(C, '/auth/logout', { json: { refresh_token: second, mode: 'json' } });
  assert.ok(out.status === 200 || out.status === 204, `logout on node 3: ${out.status} ${out.text}`);
  assert.deepEqual(await rowsOf(u.id), [], 'session rows left after the logout');
  await afterTtl();
  for (const base of NODES) {
    for (const [what, token] of [['the successor', second], ['the first token', first]]) {
      const x = await http(base, '/auth/refresh', { json: { refresh_token: token, mode: 'json' } });
      expectError(x, 401, 'INVALID_CREDENTIALS', `${what} on ${NAME[base]}:`);
    }
  }
});

await step('session mode: login on node 1, refresh on node 2, logout on node 3: the cookie fails everywhere', async () => {
  const u = await newUser('session');
  const l = await login(A, u.email, u.password, 'session');
  const first = sessionCookie(l);
  // Every node reads (and caches) the session row.
  for (const base of NODES) expectStatus(await http(base, '/auth/verify', { cookie: first }), 200, `first cookie on ${NAME[base]}:`);
  const r = await http(B, '/auth/refresh', { cookie: first, json: { mode: 'session' } });
  expectStatus(r, 200, 'refresh on node 2:');
  const second = sessionCookie(r);
  assert.notEqual(second.directus_session_token, first.directus_session_token);
  for (const base of NODES) {
    const v = await http(base, '/auth/verify', { cookie: second });
    expectStatus(v, 200, `new cookie on ${NAME[base]}:`);
    assert.equal(v.res.headers.get('x-gatehouse-user-id'), u.id);
  }
  const out = await http(C, '/auth/logout', { cookie: second, json: { mode: 'session' } });
  assert.ok(out.status === 200 || out.status === 204, `logout on node 3: ${out.status} ${out.text}`);
  // On the node that ran the logout: at once.
  expectError(await http(C, '/auth/verify', { cookie: second }), 401, 'INVALID_CREDENTIALS', 'node 3 right after:');
  assert.deepEqual(await rowsOf(u.id), [], 'session rows left after the logout');
  await afterTtl();
  for (const base of NODES) {
    for (const [what, jar] of [['the new cookie', second], ['the first cookie', first]]) {
      expectStatus(await http(base, '/auth/verify', { cookie: jar }), 401, `${what} /auth/verify on ${NAME[base]}:`);
      expectStatus(await http(base, '/users/me', { cookie: jar }), 401, `${what} /users/me on ${NAME[base]}:`);
      const x = await http(base, '/auth/refresh', { cookie: jar, json: { mode: 'session' } });
      expectError(x, 401, 'INVALID_CREDENTIALS', `${what} refresh on ${NAME[base]}:`);
    }
  }
});

await step('30 concurrent refreshes of one token over the three nodes: one successor', async () => {
  const u = await newUser('race');
  const l = await login(A, u.email, u.password);
  const token = l.body.data.refresh_token;
  const answers = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      http(NODES[i % 3], '/auth/refresh', { json: { refresh_token: token, mode: 'json' } })),
  );
  const statuses = answers.map((a) => a.status);
  assert.deepEqual(statuses, Array(30).fill(200), `statuses: ${statuses.join(',')} ${answers.find((a) => a.status !== 200)?.text ?? ''}`);
  const successors = new Set(answers.map((a) => a.body.data.refresh_token));
  assert.equal(successors.size, 1, `${successors.size} different refresh tokens handed out`);
  const [next] = successors;
  assert.notEqual(next, token);
  // Every answer's access token is good for the same user, on every node.
  for (const [i, a] of answers.entries()) {
    if (i % 10) continue;
    const v = await http(NODES[(i + 1) % 3], '/auth/verify', { token: a.body.data.access_token });
    expectStatus(v, 200);
    assert.equal(v.res.headers.get('x-gatehouse-user-id'), u.id);
  }
  // In the database: the old row (pointing at its successor for the grace window) and one new.
  const rows = await rowsOf(u.id);
  assert.equal(rows.length, 2, `session rows: ${rows.length}`);
  const old = rows.find((x) => x.token === token);
  assert.ok(old, 'the old row is gone inside the grace window');
  assert.equal(old.next_token, next);
  assert.ok(rows.some((x) => x.token === next && x.next_token === null), 'the successor row');
  // The successor is a normal token: it rotates once more.
  const again = await http(C, '/auth/refresh', { json: { refresh_token: next, mode: 'json' } });
  expectStatus(again, 200, 'the successor refreshed:');
  assert.notEqual(again.body.data.refresh_token, next);
  return `30 × 200, one successor, ${rows.length} rows`;
});

await step('a role change on node 1 shows on nodes 2 and 3 within the cache TTL', async () => {
  const role = await http(A, '/roles', { token: admin.token, json: { name: `e2e nodes ${uniq}` } });
  expectStatus(role, 200, 'POST /roles:');
  const editor = role.body.data.id;
  const u = await newUser('role', editor);
  const access = (await login(B, u.email, u.password)).body.data.access_token;
  const seen = async (base) => {
    const v = await http(base, '/auth/verify', { token: access });
    expectStatus(v, 200, `verify on ${NAME[base]}:`);
    return [v.res.headers.get('x-gatehouse-role'), v.res.headers.get('x-gatehouse-admin-access')];
  };
  for (const base of NODES) assert.deepEqual(await seen(base), [editor, 'false'], `before, ${NAME[base]}`);
  // Promotion to the Administrator role, through node 1: at once there, within the TTL elsewhere.
  expectStatus(await http(A, `/users/${u.id}`, { method: 'PATCH', token: admin.token, json: { role: admin.role } }), 200, 'PATCH role:');
  assert.deepEqual(await seen(A), [admin.role, 'true'], 'node 1 right after');
  await afterTtl();
  for (const base of NODES) assert.deepEqual(await seen(base), [admin.role, 'true'], `promoted, ${NAME[base]}`);
  const me = await http(C, '/users/me?fields=role', { token: access });
  expectStatus(me, 200);
  assert.equal(me.body.data.role, admin.role, '/users/me role on node 3');
  // And the demotion back, through node 3.
  expectStatus(await http(C, `/users/${u.id}`, { method: 'PATCH', token: admin.token, json: { role: editor } }), 200, 'PATCH back:');
  await afterTtl();
  for (const base of NODES) assert.deepEqual(await seen(base), [editor, 'false'], `demoted, ${NAME[base]}`);
  expectError(await http(A, '/users', { token: access }), 403, 'FORBIDDEN', 'the demoted user lists users on node 1:');
});

finish(LABEL);
