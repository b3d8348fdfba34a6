// Collection permissions on directus_users, side by side: the same requests sent to a real
// Directus 12.4.0 and to gatehouse on the same database, each with a token of its own, and
// status and body compared field by field. The permissions are made through Directus's API
// (/policies, /permissions, /roles, /users), as a deployment makes them.
// Run by scripts/e2e.sh once per database:
//   D_URL=… G_URL=… ADMIN_EMAIL=… ADMIN_PASSWORD=… LABEL=sqlite node permissions.mjs

import { randomBytes } from 'node:crypto';
import { assert, env, expectStatus, finish, http, note, sleep, step } from './lib.mjs';

const D = env('D_URL');
const G = env('G_URL');
const LABEL = `permissions-${env('LABEL', 'db')}`;
const ADMIN = { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') };
const PW = 'E2e-perm-passw0rd!';
const uniq = randomBytes(3).toString('hex');
const ME = '$CURRENT_USER';

async function token(base, email, password = PW) {
  const r = await http(base, '/auth/login', { json: { email, password, mode: 'json' } });
  expectStatus(r, 200, `login ${email} at ${base === D ? 'Directus' : 'gatehouse'}:`);
  return r.body.data.access_token;
}

// Values that legitimately differ between two answers given a moment apart.
const VOLATILE = new Set(['last_access']);

/** A body with user lists sorted by id and volatile values replaced by their type. */
function normal(v) {
  if (Array.isArray(v)) {
    const out = v.map(normal);
    if (out.every((x) => x && typeof x === 'object' && 'id' in x)) out.sort((a, b) => String(a.id).localeCompare(String(b.id)));
    return out;
  }
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v).sort().map((k) => [k, VOLATILE.has(k) && v[k] !== null ? `<${typeof v[k]}>` : normal(v[k])]),
    );
  }
  return v;
}

/** Sends one request to both servers and compares status and body field by field. */
async function same(what, method, path, tokens, json) {
  const opts = (t) => ({ method, token: t, ...(json !== undefined ? { json } : {}) });
  const d = await http(D, path, opts(tokens.d));
  const g = await http(G, path, opts(tokens.g));
  assert.equal(g.status, d.status, `${what}: gatehouse ${g.status} vs Directus ${d.status}\n  G: ${g.text.slice(0, 400)}\n  D: ${d.text.slice(0, 400)}`);
  assert.deepEqual(normal(g.body), normal(d.body), `${what}: bodies differ`);
  return `${d.status}`;
}

let DA;
const ids = {};
const users = {};

const ok = await step('fixtures: policies with permissions on directus_users, roles and users made through Directus', async () => {
  DA = await token(D, ADMIN.email, ADMIN.password);
  const post = async (path, json) => {
    const r = await http(D, path, { json, token: DA });
    expectStatus(r, 200, `POST ${path}`);
    return r.body.data.id;
  };
  const perm = (policy, action, permissions, fields, extra = {}) =>
    post('/permissions', { policy, collection: 'directus_users', action, permissions, fields, ...extra });
  const policy = (name) => post('/policies', { name: `e2e ${name} ${uniq}`, app_access: false, admin_access: false });

  // Read all, update a few own fields.
  ids.pFront = await policy('front');
  await perm(ids.pFront, 'read', {}, ['*']);
  await perm(ids.pFront, 'update', { id: { _eq: ME } }, ['first_name', 'last_name']);
  // Only one's own row.
  ids.pSelf = await policy('self');
  await perm(ids.pSelf, 'read', { id: { _eq: ME } }, ['*']);
  // Everyone's id and email, one's own names.
  ids.pDir = await policy('directory');
  await perm(ids.pDir, 'read', {}, ['id', 'email']);
  await perm(ids.pDir, 'read', { id: { _eq: ME } }, ['first_name', 'last_name']);
  // Validation and presets on update.
  ids.pVal = await policy('validated');
  await perm(ids.pVal, 'read', { id: { _eq: ME } }, ['*']);
  await perm(ids.pVal, 'update', { id: { _eq: ME } }, ['first_name', 'title'], {
    validation: { first_name: { _starts_with: 'A' } },
    presets: { title: 'Member' },
  });
  for (const [key, p] of Object.entries({ front: ids.pFront, self: ids.pSelf, dir: ids.pDir, val: ids.pVal })) {
    const role = await post('/roles', { name: `e2e ${key} ${uniq}` });
    await post('/access', { role, policy: p });
    users[key] = { email: `perm-${key}-${uniq}@example.com` };
    users[key].id = await post('/users', { email: users[key].email, password: PW, role, status: 'active', first_name: `F${key}` });
  }
  // gatehouse reads permissions through a per-node cache of GATEHOUSE_USER_CACHE_TTL (1 s).
  await sleep(1500);
  return `${Object.keys(users).length} users`;
});
if (!ok) finish(LABEL);

const tok = {};
await step('each user logs in at both servers', async () => {
  for (const [key, u] of Object.entries(users)) tok[key] = { d: await token(D, u.email), g: await token(G, u.email) };
});

await step('read all + update own: /users/me, another user, the list', async () => {
  const t = tok.front;
  await same('GET /users/me', 'GET', '/users/me', t);
  await same('GET /users/me?fields=id,email,first_name', 'GET', '/users/me?fields=id,email,first_name', t);
  await same('GET /users/<other>', 'GET', `/users/${users.self.id}`, t);
  await same('GET /users?fields=id,email', 'GET', `/users?fields=id,email&filter[email][_contains]=${uniq}`, t);
});

await step('read all + update own: PATCH of first_name works, of role or status is 403, of another row is 403', async () => {
  const t = tok.front;
  await same('PATCH /users/me first_name', 'PATCH', '/users/me', t, { first_name: 'Front' });
  await same('PATCH /users/me role', 'PATCH', '/users/me', t, { role: null });
  await same('PATCH /users/me status', 'PATCH', '/users/me', t, { status: 'suspended' });
  await same('PATCH /users/<other> first_name', 'PATCH', `/users/${users.self.id}`, t, { first_name: 'Mallory' });
  await same('PATCH /users/me unknown field', 'PATCH', '/users/me', t, { nope: 1 });
});

await step('$CURRENT_USER read filter: another row is not readable, the list holds one row', async () => {
  const t = tok.self;
  await same('GET /users/me', 'GET', '/users/me', t);
  await same('GET /users/<other>', 'GET', `/users/${users.front.id}`, t);
  await same('GET /users', 'GET', '/users?fields=id,email', t);
  await same('GET /users filtered to another row', 'GET', `/users?fields=id&filter[id][_eq]=${users.front.id}`, t);
  await same('PATCH /users/me without an update permission', 'PATCH', '/users/me', t, { first_name: 'x' });
});

await step('union of fields, per-row cases, forbidden fields and filters', async () => {
  const t = tok.dir;
  await same('GET /users/me', 'GET', '/users/me', t);
  await same('GET /users/<other>', 'GET', `/users/${users.front.id}`, t);
  await same('GET /users?fields=id,first_name', 'GET', `/users?fields=id,first_name&filter[email][_contains]=${uniq}`, t);
  await same('GET /users?fields=id,status', 'GET', '/users?fields=id,status', t);
  await same('GET /users/me?fields=status', 'GET', '/users/me?fields=status', t);
  await same('GET /users?filter[status][_eq]=active', 'GET', '/users?filter[status][_eq]=active', t);
  await same('GET /users?fields=nope', 'GET', '/users?fields=nope', t);
});

await step('update validation and presets', async () => {
  const t = tok.val;
  await same('PATCH failing validation', 'PATCH', '/users/me', t, { first_name: 'Bob' });
  await same('PATCH with the preset', 'PATCH', '/users/me', t, { first_name: 'Alice' });
  await same('PATCH over the preset', 'PATCH', '/users/me', t, { first_name: 'Ann', title: 'Lead' });
});

await step('filters on secrets: refused by gatehouse for everyone (a deliberate difference)', async () => {
  const t = tok.front;
  const path = '/users?fields=id&filter[password][_nnull]=true';
  const g = await http(G, path, { token: t.g });
  const d = await http(D, path, { token: t.d });
  assert.equal(g.status, 403, `gatehouse: ${g.text}`);
  note(`filter on password with read-all: Directus ${d.status}, gatehouse 403 (docs/compatibility.md)`);
});

finish(LABEL);
