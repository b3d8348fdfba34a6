// Rate limits shared through a real Redis: two gatehouse processes on one database, both with
// RATE_LIMITER_STORE=redis on the same private redis-server (started by scripts/e2e.sh),
// RATE_LIMITER_POINTS=RL_POINTS per 60 s and IP_TRUST_PROXY=true (X-Forwarded-For picks the
// client). The limit is used up across both nodes; Redis is then shut down mid-run (every
// request answers 503 SERVICE_UNAVAILABLE, none passes unlimited), and a new redis-server on
// the same port brings both nodes back by themselves.
//   G_A_URL=… G_B_URL=… REDIS_PORT=… RL_POINTS=… ADMIN_EMAIL=… ADMIN_PASSWORD=… node ratelimit.mjs
// Ends with `ratelimit-…: N passed, M failed`.

import { spawn, execFileSync } from 'node:child_process';
import { assert, env, expectError, expectStatus, finish, http, sleep, step } from './lib.mjs';

const A = env('G_A_URL');
const B = env('G_B_URL');
const REDIS_PORT = env('REDIS_PORT');
const POINTS = Number(env('RL_POINTS'));
const LABEL = `ratelimit-${env('LABEL', 'db')}`;
const EMAIL = env('ADMIN_EMAIL');
const PASSWORD = env('ADMIN_PASSWORD');

const rand = () => Math.floor(Math.random() * 250) + 1;
const client = () => `198.51.${rand()}.${rand()}`;
const ping = (base, ip) => http(base, '/server/ping', { headers: { 'x-forwarded-for': ip } });

/** Polls `fn` until it returns true or `ms` pass. */
async function until(ms, fn) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(100);
  }
}

let redis2 = null;
process.on('exit', () => { if (redis2) redis2.kill('SIGKILL'); });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(143));

await step('the per-IP limit is used up across both nodes', async () => {
  const ip = client();
  for (let i = 0; i < POINTS; i++) {
    const r = await ping(i % 2 ? B : A, ip);
    expectStatus(r, 200, `request ${i + 1} of ${POINTS}`);
  }
  for (const [name, base] of [['A', A], ['B', B]]) {
    const r = await ping(base, ip);
    expectError(r, 429, 'REQUESTS_EXCEEDED', `node ${name}:`);
    assert.match(r.body.errors[0].message, /^Too many requests, retry after \d+(ms|s|m)\.$/);
    assert.equal(r.body.errors[0].extensions.limit, POINTS);
    const retry = Number(r.res.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  }
  return `${POINTS} answered, then 429 on both nodes`;
});

await step('another client is not limited, and logs in through either node', async () => {
  expectStatus(await ping(A, client()), 200);
  const r = await http(B, '/auth/login', {
    json: { email: EMAIL, password: PASSWORD, mode: 'json' },
    headers: { 'x-forwarded-for': client() },
  });
  expectStatus(r, 200, 'login:');
  assert.equal(typeof r.body.data.access_token, 'string');
});

await step('Redis stopped mid-run: both nodes answer 503, none lets a request through', async () => {
  try {
    execFileSync('redis-cli', ['-p', REDIS_PORT, 'shutdown', 'nosave'], { stdio: 'ignore', timeout: 10000 });
  } catch {
    // redis-cli may exit non-zero as the server closes the connection; checked below.
  }
  const down = await until(5000, async () => {
    try {
      execFileSync('redis-cli', ['-p', REDIS_PORT, 'ping'], { stdio: 'ignore', timeout: 2000 });
      return false;
    } catch {
      return true;
    }
  });
  assert.ok(down, 'redis-server did not stop');
  for (const [name, base] of [['A', A], ['B', B]]) {
    let last;
    const ok = await until(5000, async () => {
      last = await ping(base, client());
      return last.status === 503;
    });
    assert.ok(ok, `node ${name} still answers ${last.status}`);
    expectError(last, 503, 'SERVICE_UNAVAILABLE', `node ${name}:`);
    assert.equal(last.body.errors[0].extensions.service, 'rate-limiter');
    // Stays refused while Redis is down.
    expectError(await ping(base, client()), 503, 'SERVICE_UNAVAILABLE', `node ${name} again:`);
  }
});

await step('service comes back by itself when Redis returns', async () => {
  redis2 = spawn('redis-server', ['--port', REDIS_PORT, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  for (const [name, base] of [['A', A], ['B', B]]) {
    let last;
    const ok = await until(20000, async () => {
      last = await ping(base, client());
      return last.status === 200;
    });
    assert.ok(ok, `node ${name} still answers ${last.status}: ${String(last.text).slice(0, 200)}`);
  }
  // And the limit is shared again.
  const ip = client();
  for (let i = 0; i < POINTS; i++) expectStatus(await ping(i % 2 ? A : B, ip), 200);
  expectError(await ping(A, ip), 429, 'REQUESTS_EXCEEDED');
});

if (redis2) redis2.kill('SIGTERM');
finish(LABEL);
