// /metrics after an e2e run, read by a real Prometheus text-format parser: the official Python
// client's (e2e/promparse.py, in the venv scripts/e2e.sh keeps), never by pattern matching.
// The nodes of e2e/nodes.mjs (METRICS_ENABLED=true, METRICS_TOKENS) are scraped after that
// suite: the refreshes it made show on every node. Then one node gets a known sequence
// (a login, two failed logins, a refresh, a refused refresh) and the counters, the request
// histogram of /auth/login and the password-hash histogram move by exactly that; the pool
// gauges are consistent with DB_POOL__MAX.
//   NODE_URLS=a,b,c METRICS_TOKEN=… PYTHON=…/venv/bin/python PARSER=…/promparse.py POOL_MAX=10
//   ADMIN_EMAIL=… ADMIN_PASSWORD=… node metrics.mjs
// Ends with `metrics-…: N passed, M failed`.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { assert, env, expectError, expectStatus, finish, http, step } from './lib.mjs';

const NODES = env('NODE_URLS').split(',');
const TOKEN = env('METRICS_TOKEN');
const PYTHON = env('PYTHON');
const PARSER = env('PARSER');
const POOL_MAX = Number(env('POOL_MAX'));
const EMAIL = env('ADMIN_EMAIL');
const PASSWORD = env('ADMIN_PASSWORD');
const LABEL = `metrics-${env('LABEL', 'db')}`;
const uniq = randomBytes(4).toString('hex');
const [A] = NODES;

/** Scrapes one node and parses the answer with prometheus_client. */
async function scrape(base) {
  const r = await http(base, '/metrics', { headers: { authorization: `Metrics ${TOKEN}` } });
  expectStatus(r, 200, `GET /metrics on ${base}:`);
  assert.match(r.res.headers.get('content-type') || '', /^text\/plain/, 'content type');
  const json = execFileSync(PYTHON, [PARSER], { input: r.text, timeout: 20000, maxBuffer: 16 << 20 });
  const families = JSON.parse(json.toString('utf8'));
  const byName = new Map(families.map((f) => [f.name, f]));
  return {
    families: byName,
    /** The value of the one sample with this name and (at least) these labels; 0 if none. */
    value(name, labels = {}) {
      const hits = families.flatMap((f) => f.samples).filter((s) => s.name === name
        && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      assert.ok(hits.length <= 1, `${name} ${JSON.stringify(labels)}: ${hits.length} samples`);
      return hits.length ? hits[0].value : 0;
    },
    samples(name) {
      return families.flatMap((f) => f.samples).filter((s) => s.name === name);
    },
  };
}

await step('/metrics answers only to a listed token or an admin', async () => {
  expectError(await http(A, '/metrics'), 403, 'FORBIDDEN', 'no token:');
  expectError(await http(A, '/metrics', { headers: { authorization: `Metrics ${TOKEN}x` } }), 403, 'FORBIDDEN', 'wrong token:');
  // As a bearer it is no user's token: refused as every route refuses one (Directus's auth middleware).
  expectError(await http(A, '/metrics', { token: TOKEN }), 401, 'INVALID_CREDENTIALS', 'as a bearer:');
  const l = await http(A, '/auth/login', { json: { email: EMAIL, password: PASSWORD } });
  expectStatus(l, 200);
  expectStatus(await http(A, '/metrics', { token: l.body.data.access_token }), 200, 'an admin\'s token:');
});

if (NODES.length > 1) {
  await step('after the run: refreshes counted on every node, their requests in the histogram', async () => {
    let total = 0;
    const per = [];
    for (const base of NODES) {
      const s = await scrape(base);
      const n = s.value('gatehouse_refreshes_total', { outcome: 'success' });
      const hist = s.value('gatehouse_http_request_duration_seconds_count', { route: '/auth/refresh', method: 'POST', status: '2xx' });
      assert.ok(n > 0, `no successful refresh counted on ${base}`);
      assert.equal(hist, n, `${base}: 2xx /auth/refresh requests vs successful refreshes`);
      assert.ok(s.value('gatehouse_refreshes_total', { outcome: 'invalid_credentials' }) > 0, `no refused refresh on ${base}`);
      per.push(n);
      total += n;
    }
    // The concurrent-refresh step of nodes.mjs alone made 30, spread over the nodes.
    assert.ok(total >= 30, `${total} successful refreshes in all`);
    return `successful refreshes per node: ${per.join(', ')}`;
  });
}

await step('a known sequence moves the counters by exactly that', async () => {
  // A user of its own, so the failed logins cannot lock anyone else out.
  const a = await http(A, '/auth/login', { json: { email: EMAIL, password: PASSWORD } });
  expectStatus(a, 200);
  const email = `metrics-${uniq}@example.com`;
  const password = `M3trics-${uniq}`;
  expectStatus(await http(A, '/users', { token: a.body.data.access_token, json: { email, password, status: 'active' } }), 200, 'POST /users:');

  const before = await scrape(A);
  const ok = await http(A, '/auth/login', { json: { email, password } });
  expectStatus(ok, 200, 'login:');
  for (let i = 0; i < 2; i++) {
    expectError(await http(A, '/auth/login', { json: { email, password: `${password}-wrong` } }), 401, 'INVALID_CREDENTIALS', 'bad login:');
  }
  expectStatus(await http(A, '/auth/refresh', { json: { refresh_token: ok.body.data.refresh_token } }), 200, 'refresh:');
  expectError(await http(A, '/auth/refresh', { json: { refresh_token: `no-such-token-${uniq}` } }), 401, 'INVALID_CREDENTIALS', 'bad refresh:');
  const after = await scrape(A);

  const delta = (name, labels) => after.value(name, labels) - before.value(name, labels);
  assert.equal(delta('gatehouse_logins_total', { provider: 'default', outcome: 'success' }), 1, 'successful logins');
  assert.equal(delta('gatehouse_logins_total', { provider: 'default', outcome: 'invalid_credentials' }), 2, 'failed logins');
  assert.equal(delta('gatehouse_refreshes_total', { outcome: 'success' }), 1, 'refreshes');
  assert.equal(delta('gatehouse_refreshes_total', { outcome: 'invalid_credentials' }), 1, 'refused refreshes');
  const login = { route: '/auth/login', method: 'POST' };
  assert.equal(delta('gatehouse_http_request_duration_seconds_count', { ...login, status: '2xx' }), 1, '2xx /auth/login requests');
  assert.equal(delta('gatehouse_http_request_duration_seconds_count', { ...login, status: '4xx' }), 2, '4xx /auth/login requests');
  assert.ok(delta('gatehouse_http_request_duration_seconds_sum', { ...login, status: '4xx' }) > 0, 'time spent on 4xx logins');
  // The buckets are cumulative and end at the count.
  const buckets = after.samples('gatehouse_http_request_duration_seconds_bucket')
    .filter((x) => x.labels.route === '/auth/login' && x.labels.method === 'POST' && x.labels.status === '4xx');
  assert.ok(buckets.length > 2, 'buckets of 4xx /auth/login');
  const values = buckets.map((x) => x.value);
  assert.deepEqual([...values].sort((p, q) => p - q), values, 'buckets not cumulative');
  assert.equal(buckets.at(-1).labels.le, '+Inf');
  assert.equal(values.at(-1), after.value('gatehouse_http_request_duration_seconds_count', { ...login, status: '4xx' }));
  // Three password verifications: the login and the two failures.
  assert.ok(delta('gatehouse_password_hash_wait_seconds_count') >= 3, 'password hashes counted');
  assert.equal(after.value('gatehouse_password_hash_running'), 0, 'hashes running while idle');
  return 'logins +1/+2, refreshes +1/+1, /auth/login 2xx +1, 4xx +2';
});

await step('every family parses, with the documented type; no label holds an address', async () => {
  const s = await scrape(A);
  const want = {
    gatehouse_logins: 'counter',
    gatehouse_refreshes: 'counter',
    gatehouse_refresh_reuse_detected: 'counter',
    gatehouse_password_hash_waiting: 'gauge',
    gatehouse_password_hash_running: 'gauge',
    gatehouse_password_hash_wait_seconds: 'histogram',
    gatehouse_http_request_duration_seconds: 'histogram',
    gatehouse_db_pool_connections: 'gauge',
  };
  for (const [name, type] of Object.entries(want)) {
    assert.ok(s.families.has(name), `family ${name} missing; have ${[...s.families.keys()].join(', ')}`);
    assert.equal(s.families.get(name).type, type, `${name} type`);
  }
  for (const f of s.families.values()) {
    for (const sample of f.samples) {
      for (const v of Object.values(sample.labels)) {
        assert.ok(!v.includes('@') && v.length < 100, `a label holds ${v}`);
      }
    }
  }
  return `${s.families.size} families`;
});

await step('database pool gauges: open and idle within DB_POOL__MAX', async () => {
  const s = await scrape(A);
  const [open, idle, max] = ['open', 'idle', 'max'].map((state) => s.value('gatehouse_db_pool_connections', { state }));
  assert.equal(max, POOL_MAX, 'max');
  assert.ok(open >= 1 && open <= max, `open ${open}`);
  assert.ok(idle >= 0 && idle <= open, `idle ${idle} of ${open}`);
  return `open ${open}, idle ${idle}, max ${max}`;
});

finish(LABEL);
