// Forward-auth behind a real nginx: config/nginx-forward-auth.conf (only its addresses changed by
// scripts/e2e.sh) puts `auth_request` against gatehouse's GET /auth/verify in front of
// e2e/echo-upstream.mjs, which answers with the headers it received. Every way of carrying a
// token (bearer access JWT, session cookie, `access_token` in the query, static token) reaches
// the application with the identity headers; no token, a bad one or an expired one stops at
// nginx with 401/403; FORWARD_AUTH_PUBLIC_PATHS passes without an identity; a client cannot
// forge the identity headers; a logout ends the session cookie at once.
//   N_URL=… (nginx) G_URL=… (the same gatehouse, direct) SECRET=… PUBLIC_PREFIX=/public
//   ADMIN_EMAIL=… ADMIN_PASSWORD=… node forward-auth.mjs
// Ends with `forward-auth-…: N passed, M failed`.

import { createHmac, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { assert, env, expectError, expectStatus, finish, http, jwtPayload, step } from './lib.mjs';

const N = env('N_URL');
const G = env('G_URL');
const SECRET = env('SECRET');
const PUBLIC = env('PUBLIC_PREFIX');
const EMAIL = env('ADMIN_EMAIL');
const PASSWORD = env('ADMIN_PASSWORD');
const LABEL = `forward-auth-${env('LABEL', 'db')}`;
const uniq = randomBytes(4).toString('hex');

const NAMES = ['user-id', 'role', 'email', 'admin-access', 'app-access'].map((n) => `x-gatehouse-${n}`);

/** A request through nginx; on 200 `echo` is what the application received. */
async function through(path, opts = {}) {
  const r = await http(N, path, opts);
  r.echo = null;
  if (r.status === 200) {
    assert.equal(typeof r.body, 'object', `not the echo upstream's answer: ${String(r.text).slice(0, 200)}`);
    r.echo = r.body;
    r.seen = (name) => r.echo.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
  }
  return r;
}

/** Asserts that the application got exactly this identity, each header once. */
function expectIdentity(r, want, what) {
  expectStatus(r, 200, what);
  for (const [name, value] of Object.entries(want)) {
    assert.deepEqual(r.seen(name), [value], `${what} ${name} at the application`);
  }
}

/** The identity gatehouse gives `user` (from /users/me read with its own token). */
async function identityOf(token) {
  const me = await http(G, '/users/me?fields=id,email,role.id', { token });
  expectStatus(me, 200, '/users/me:');
  const u = me.body.data;
  const role = u.role && typeof u.role === 'object' ? u.role.id : u.role;
  return { id: u.id, email: u.email, role: role ?? '' };
}

/** A request sent byte for byte as given (fetch would resolve `..` before sending). */
function raw(path, headers = {}) {
  const url = new URL(N);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, headers, timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function sign(header, payload) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc(header)}.${enc(payload)}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

const login = async (base, body) => {
  const r = await http(base, '/auth/login', { json: body });
  expectStatus(r, 200, `login ${body.email} (${body.mode || 'json'}):`);
  return r;
};

let admin; // { token, identity }
let user; // a non-admin user with a static token: { id, email, password, static }

await step('setup: an admin session and a non-admin user with a static token', async () => {
  const a = await login(G, { email: EMAIL, password: PASSWORD, mode: 'json' });
  admin = { token: a.body.data.access_token };
  admin.identity = await identityOf(admin.token);
  const role = await http(G, '/roles', { token: admin.token, json: { name: `e2e fa ${uniq}` } });
  expectStatus(role, 200, 'POST /roles:');
  user = {
    email: `fa-${uniq}@example.com`,
    password: `Fa-passw0rd-${uniq}`,
    static: `fa-static-${randomBytes(16).toString('hex')}`,
    role: role.body.data.id,
  };
  const c = await http(G, '/users', {
    token: admin.token,
    json: { email: user.email, password: user.password, role: user.role, token: user.static, status: 'active' },
  });
  expectStatus(c, 200, 'POST /users:');
  user.id = c.body.data.id;
});

await step('no token: 401 from nginx, the application is not reached', async () => {
  for (const path of ['/app/x', '/', `/app/x?access_token=`]) {
    const r = await through(path);
    expectStatus(r, 401, `${path}:`);
    assert.ok(!r.echo, 'the application answered');
  }
});

await step('bad tokens: 401 for garbage, 403 for a JWT with a bad signature', async () => {
  expectStatus(await through('/app/x', { token: 'not-a-token-at-all' }), 401, 'garbage bearer:');
  expectStatus(await through('/app/x', { cookie: { directus_session_token: 'garbage' } }), 401, 'garbage cookie:');
  const forged = admin.token.slice(0, admin.token.lastIndexOf('.') + 1) + 'A'.repeat(43);
  expectStatus(await through('/app/x', { token: forged }), 403, 'bad signature:');
  expectStatus(await through(`/app/x?access_token=${encodeURIComponent(forged)}`), 403, 'bad signature in query:');
});

await step('bearer access JWT: 200, the identity headers at the application', async () => {
  const r = await through('/app/items?x=1', { token: admin.token });
  const { id, email, role } = admin.identity;
  expectIdentity(r, {
    'x-gatehouse-user-id': id,
    'x-gatehouse-email': email,
    'x-gatehouse-role': role,
    'x-gatehouse-admin-access': 'true',
    'x-gatehouse-app-access': 'true',
  }, 'bearer:');
  assert.equal(r.echo.path, '/app/items?x=1');
});

await step('forged identity headers from the client never reach the application', async () => {
  const fake = `forged-${uniq}`;
  const forged = {
    'X-Gatehouse-User-Id': fake,
    'x-gatehouse-role': fake,
    'X-Gatehouse-Email': `${fake}@example.com`,
    'X-Gatehouse-Admin-Access': 'true',
    'X-Gatehouse-App-Access': 'true',
    // Spellings an application framework may take for the same header.
    'X-Gatehouse_User_Id': fake,
    'X_GATEHOUSE_USER_ID': fake,
  };
  const u = await login(G, { email: user.email, password: user.password, mode: 'json' });
  const checks = [
    ['with a non-admin token', { token: u.body.data.access_token, headers: forged }, '/app/x'],
    ['on a public path', { headers: forged }, `${PUBLIC}/page`],
  ];
  for (const [what, opts, path] of checks) {
    const r = await through(path, opts);
    expectStatus(r, 200, `${what}:`);
    const leaked = r.echo.headers.filter(([, v]) => v.includes(fake));
    assert.deepEqual(leaked, [], `${what}: forged headers reached the application`);
  }
  const r = await through('/app/x', checks[0][1]);
  expectIdentity(r, {
    'x-gatehouse-user-id': user.id,
    'x-gatehouse-role': user.role,
    'x-gatehouse-email': user.email,
    'x-gatehouse-admin-access': 'false',
    'x-gatehouse-app-access': 'false',
  }, 'the real identity:');
  // No token and a forged header, off the public paths: still refused.
  expectStatus(await through('/app/x', { headers: forged }), 401, 'forged headers alone:');
});

await step('access_token in the query: 200 with the identity', async () => {
  const r = await through(`/app/x?a=1&access_token=${encodeURIComponent(admin.token)}`);
  expectIdentity(r, { 'x-gatehouse-user-id': admin.identity.id, 'x-gatehouse-admin-access': 'true' }, 'query:');
});

await step('static token (bearer and query): 200 with that user\'s identity', async () => {
  const want = {
    'x-gatehouse-user-id': user.id,
    'x-gatehouse-email': user.email,
    'x-gatehouse-role': user.role,
    'x-gatehouse-admin-access': 'false',
  };
  expectIdentity(await through('/app/x', { token: user.static }), want, 'static bearer:');
  expectIdentity(await through(`/app/x?access_token=${user.static}`), want, 'static query:');
  expectStatus(await through('/app/x', { token: `${user.static}x` }), 401, 'a wrong static token:');
});

await step('expired access token: 401 at nginx (gatehouse says TOKEN_EXPIRED)', async () => {
  // The admin's own token, re-signed with the shared SECRET as if issued two minutes ago.
  const [h] = admin.token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  const now = Math.floor(Date.now() / 1000);
  const expired = sign(header, { ...jwtPayload(admin.token), iat: now - 120, exp: now - 60 });
  const direct = await http(G, '/auth/verify', { token: expired });
  expectError(direct, 401, 'TOKEN_EXPIRED', 'direct /auth/verify:');
  // The same claims with a live exp pass: the refusal above is the expiry alone.
  const live = sign(header, { ...jwtPayload(admin.token), iat: now - 120, exp: now + 60 });
  expectIdentity(await through('/app/x', { token: live }), { 'x-gatehouse-user-id': admin.identity.id }, 'live copy:');
  expectStatus(await through('/app/x', { token: expired }), 401, 'expired bearer:');
  expectStatus(await through(`/app/x?access_token=${expired}`), 401, 'expired in the query:');
});

await step('public path: 200 with role public and no identity', async () => {
  for (const path of [PUBLIC, `${PUBLIC}/a/b.css`]) {
    const r = await through(path);
    expectStatus(r, 200, `${path}:`);
    assert.deepEqual(r.seen('x-gatehouse-role'), ['public'], `${path} role`);
    // Empty values: nginx sends no header at all.
    for (const name of NAMES.filter((n) => n !== 'x-gatehouse-role' && n !== 'x-gatehouse-admin-access' && n !== 'x-gatehouse-app-access')) {
      assert.deepEqual(r.seen(name), [], `${path} ${name}`);
    }
    assert.deepEqual(r.seen('x-gatehouse-admin-access'), ['false']);
  }
  // A valid token on a public path still names its user.
  expectIdentity(await through(`${PUBLIC}/x`, { token: admin.token }), { 'x-gatehouse-user-id': admin.identity.id }, 'token on a public path:');
  // Neighbours and escapes are not public (sent raw: fetch would resolve the dot segment).
  expectStatus(await through(`${PUBLIC}ity`), 401, `${PUBLIC}ity:`);
  for (const path of [`${PUBLIC}/../app/x`, `${PUBLIC}/%2e%2e/app/x`, `${PUBLIC}%2f..%2fapp`]) {
    const r = await raw(path);
    assert.equal(r.status, 401, `${path}: ${r.status} ${r.body.slice(0, 200)}`);
  }
});

await step('a client cannot name another URI for the check (X-Forwarded-Uri, X-Original-URI)', async () => {
  // gatehouse reads the forwarded URI from these headers; nginx must not let the client's own
  // copies decide which path is checked (a public one) or which query holds the token.
  for (const name of ['X-Forwarded-Uri', 'X-Original-URI', 'x-forwarded-uri']) {
    const r = await through('/app/secret', { headers: { [name]: `${PUBLIC}/x` } });
    assert.ok(!r.echo, `${name}: ${PUBLIC}/x let /app/secret through: ${r.status}`);
    expectStatus(r, 401, `${name}:`);
  }
  // A token in a forged URI is not taken either: the real URI has none.
  const r = await through('/app/x', { headers: { 'X-Forwarded-Uri': `/app/x?access_token=${user.static}` } });
  assert.ok(!r.echo, `a token in a forged X-Forwarded-Uri was taken: ${r.status}`);
});

await step('session cookie through nginx: 200 with the identity; a logout ends it at once', async () => {
  // Login and logout go through nginx's /auth/ location to gatehouse, as a browser's would.
  const l = await http(N, '/auth/login', { json: { email: user.email, password: user.password, mode: 'session' } });
  expectStatus(l, 200, 'session login:');
  const cookie = l.cookies.directus_session_token;
  assert.ok(cookie && cookie.value, 'no session cookie');
  const jar = { directus_session_token: cookie.value };
  const want = { 'x-gatehouse-user-id': user.id, 'x-gatehouse-email': user.email, 'x-gatehouse-role': user.role };
  expectIdentity(await through('/app/x', { cookie: jar }), want, 'cookie:');
  expectIdentity(await through('/app/y', { cookie: jar }), want, 'cookie again (cached):');
  const out = await http(N, '/auth/logout', { method: 'POST', cookie: jar, json: { mode: 'session' } });
  assert.ok(out.status === 200 || out.status === 204, `logout: ${out.status} ${out.text}`);
  const r = await through('/app/x', { cookie: jar });
  expectStatus(r, 401, 'cookie right after the logout:');
  assert.ok(!r.echo, 'the application answered');
  // The static token of the same user is unaffected.
  expectStatus(await through('/app/x', { token: user.static }), 200, 'static token after the logout:');
});

await step('HEAD /auth/verify answers as GET does', async () => {
  const h = await http(G, '/auth/verify', { method: 'HEAD', token: admin.token });
  expectStatus(h, 200, 'HEAD:');
  assert.equal(h.res.headers.get('x-gatehouse-user-id'), admin.identity.id);
  expectStatus(await http(G, '/auth/verify', { method: 'HEAD' }), 401, 'HEAD without a token:');
});

finish(LABEL);
