// SAML against a real IdP (e2e/saml-idp.mjs: samlify as the IdP, with a password form), driven
// by headless Chromium: SP-initiated login ends on the redirect with a session and /users/me
// answers; IdP logout. Then hostile responses built from a captured good one, posted to the
// ACS with the browser's request cookie: unsigned, tampered, wrapped (XSW), re-signed with the
// IdP's own key but for another audience / destination / too late, unsolicited, answering
// another request, replayed. Each ends on Directus's failure redirect `?reason=UNKNOWN_EXCEPTION`.
//   G_URL=… IDP_URL=… IDP_KEY=… IDP_CERT=… LABEL=… node saml.mjs
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignedXml } from 'xml-crypto';
import { assert, env, finish, http, step } from './lib.mjs';

const G = env('G_URL');
const IDP = env('IDP_URL');
const KEY = readFileSync(env('IDP_KEY'));
const CERT = readFileSync(env('IDP_CERT'));
const LABEL = `saml-${env('LABEL', 'db')}`;
const SP_ENTITY = `${G}/auth/login/corp`;
const RELAY = '/server/ping';
const FAILED = `${RELAY}?reason=UNKNOWN_EXCEPTION`;

const profile = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'gatehouse-e2e-saml-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
ctx.setDefaultTimeout(30000);
const page = ctx.pages()[0] || (await ctx.newPage());
const cookie = async (name) => (await ctx.cookies(G)).find((c) => c.name === name);
const at = (u, origin, path) => { const x = new URL(u); return x.origin === origin && x.pathname === path; };

async function signIn(user, password) {
  await page.goto(`${G}/auth/login/corp?redirect=${encodeURIComponent(RELAY)}`);
  assert.ok(at(page.url(), IDP, '/sso'), `not at the IdP: ${page.url()}`);
  await page.fill('#login', user);
  await page.fill('#password', password);
}

/** Posts an ACS form as the IdP's page would; `cookie` is a Cookie header or none. */
async function acs(samlResponse, cookieHeader) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (cookieHeader) headers.cookie = cookieHeader;
  const res = await fetch(`${G}/auth/login/corp/acs`, {
    method: 'POST', headers, redirect: 'manual',
    body: new URLSearchParams({ SAMLResponse: samlResponse, RelayState: RELAY }).toString(),
    signal: AbortSignal.timeout(20000),
  });
  await res.text();
  return { status: res.status, location: res.headers.get('location'), setCookie: res.headers.getSetCookie() };
}

const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64').toString('utf8');
const stripSignatures = (xml) => xml.replace(/<(\w+:)?Signature[\s>][\s\S]*?<\/(\w+:)?Signature>/g, '');
const assertionOf = (xml) => xml.match(/<(\w+:)?Assertion[\s>][\s\S]*<\/(\w+:)?Assertion>/)[0];

/** Signs the (only) assertion with the IdP's key, as the IdP does (xml-crypto, samlify's signer). */
function signAssertion(xml) {
  const sig = new SignedXml({
    privateKey: KEY,
    publicCert: CERT,
    signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  });
  sig.addReference({
    xpath: "//*[local-name(.)='Assertion']",
    transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
    digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
  });
  sig.computeSignature(xml, {
    prefix: 'ds',
    location: { reference: "//*[local-name(.)='Assertion']/*[local-name(.)='Issuer']", action: 'after' },
  });
  return sig.getSignedXml();
}

let sessionCookie;
try {
  await step('the SP metadata is served as configured', async () => {
    const r = await http(G, '/auth/login/corp/metadata');
    assert.equal(r.status, 200);
    assert.match(r.res.headers.get('content-type'), /^text\/xml/);
    assert.ok(r.text.includes(`entityID="${SP_ENTITY}"`), r.text.slice(0, 200));
  });

  await step('a wrong password stays at the IdP', async () => {
    await signIn('alice', 'not-her-password');
    await page.click('#submit');
    await page.waitForSelector('#error');
    assert.ok(at(page.url(), IDP, '/login'), page.url());
    assert.equal(await cookie('directus_session_token'), undefined);
  });

  await step('SP-initiated login ends on the redirect with a session, and /users/me answers', async () => {
    await signIn('alice', 'alice-pw');
    await Promise.all([page.waitForURL((u) => at(u, G, RELAY)), page.click('#submit')]);
    assert.equal((await page.textContent('body')).trim(), 'pong');
    sessionCookie = await cookie('directus_session_token');
    assert.ok(sessionCookie?.httpOnly, 'no HttpOnly session cookie');
    const me = await page.evaluate(async () => {
      const r = await fetch('/users/me');
      return { status: r.status, body: await r.json() };
    });
    assert.equal(me.status, 200, JSON.stringify(me.body));
    assert.match(me.body.data.id, /^[0-9a-f-]{36}$/);
    const last = (await http(IDP, '/last')).body;
    assert.equal(last.relayState, RELAY);
    return `user ${me.body.data.id}`;
  });

  await step('logout goes to the IdP with a LogoutRequest and ends the session', async () => {
    await Promise.all([
      page.waitForURL((u) => at(u, IDP, '/slo')),
      page.evaluate(() => {
        const f = document.createElement('form');
        f.method = 'post';
        f.action = '/auth/login/corp/logout';
        document.body.append(f);
        f.submit();
      }),
    ]);
    await page.waitForSelector('#signed-out');
    const { logoutRequest } = (await http(IDP, '/last')).body;
    assert.equal(logoutRequest.issuer, SP_ENTITY);
    assert.equal(logoutRequest.destination, `${IDP}/slo`);
    assert.equal(await cookie('directus_session_token'), undefined, 'session cookie still set');
    const me = await http(G, '/users/me', { cookie: { directus_session_token: sessionCookie.value } });
    assert.equal(me.status, 401, me.text);
  });

  // A good response the ACS has not seen: the browser's post is stopped on its way.
  let captured;
  let requestCookie;
  await step('a good response is captured before it reaches the ACS', async () => {
    let post;
    await page.route(`${G}/auth/login/corp/acs`, async (route) => { post = route.request().postData(); await route.abort(); });
    await signIn('bob', 'bob-pw');
    await page.click('#submit');
    for (let i = 0; i < 100 && !post; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(post, 'no ACS post seen');
    await page.unroute(`${G}/auth/login/corp/acs`);
    captured = new URLSearchParams(post).get('SAMLResponse');
    const c = await cookie('saml.corp');
    assert.ok(c, 'no request cookie');
    requestCookie = `saml.corp=${c.value}`;
  });

  const xml = captured && unb64(captured);
  const refused = async (name, samlResponse, cookieHeader = requestCookie) => step(`refused: ${name}`, async () => {
    const r = await acs(samlResponse, cookieHeader);
    assert.equal(r.status, 302);
    assert.equal(r.location, FAILED);
    assert.ok(!r.setCookie.some((c) => c.startsWith('directus_session_token=') && !c.startsWith('directus_session_token=;')));
  });

  await refused('unsolicited (no login started in this browser)', captured, null);
  const other = await http(G, '/auth/login/corp');
  await refused('answering another browser\'s request', captured, `saml.corp=${other.cookies['saml.corp']?.value}`);
  await refused('unsigned', b64(stripSignatures(xml)));
  await refused('tampered attribute', b64(xml.replaceAll('>bob@example.org<', '>admin@example.com<')));
  {
    // Only the assertion's signature kept: the wrapping attacks that target such responses.
    const assertionSigned = signAssertion(stripSignatures(xml));
    const original = assertionOf(assertionSigned);
    const evil = stripSignatures(original).replaceAll('bob@example.org', 'admin@example.com');
    await refused('XSW: signed assertion moved into Extensions, evil one in its place',
      b64(assertionSigned.replace(original, `<samlp:Extensions xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">${original}</samlp:Extensions>${evil}`)));
    await refused('XSW: a second, unsigned assertion', b64(assertionSigned.replace(original, `${original}${evil.replace(/ID="[^"]*"/, 'ID="_evil"')}`)));
    await refused('XSW: the signature moved out of the assertion',
      b64(assertionSigned.replace(original, `${original.match(/<ds:Signature[\s\S]*<\/ds:Signature>/)[0]}${evil}`)));
  }
  const resigned = (f) => b64(signAssertion(f(stripSignatures(xml))));
  await refused('re-signed for another audience', resigned((x) => x.replace(`<saml:Audience>${SP_ENTITY}</saml:Audience>`, '<saml:Audience>http://other-sp.example</saml:Audience>')));
  await refused('re-signed with another destination', resigned((x) => x.replace(/Destination="[^"]*"/, 'Destination="http://other-sp.example/acs"')));
  await refused('re-signed, expired', resigned((x) => x.replace(/NotOnOrAfter="[^"]*"/g, 'NotOnOrAfter="2020-01-01T00:00:00.000Z"')
    .replace(/IssueInstant="[^"]*"/g, 'IssueInstant="2020-01-01T00:00:00.000Z"').replace(/NotBefore="[^"]*"/g, 'NotBefore="2019-12-31T23:55:00.000Z"')));

  await step('control: the same response re-signed unchanged is accepted', async () => {
    const r = await acs(resigned((x) => x), requestCookie);
    assert.equal(r.status, 302);
    assert.equal(r.location, RELAY);
    assert.ok(r.setCookie.some((c) => /^directus_session_token=[^;]+/.test(c)), r.setCookie.join(' | '));
  });
  await refused('replayed (the captured original, same assertion)', captured);
  await refused('replayed again', resigned((x) => x));
} finally {
  await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
finish(LABEL);
