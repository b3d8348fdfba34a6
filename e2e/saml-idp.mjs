// A real SAML 2.0 identity provider for the e2e suite: samlify (the library Directus's own SAML
// driver is built on) in the IdP role, with a password form, signed responses (Response and
// Assertion, RSA-SHA256) and single logout over HTTP-Redirect.
//   IDP_PORT=… IDP_KEY=key.pem IDP_CERT=cert.pem SP_ENTITY_ID=… SP_ACS_URL=… node saml-idp.mjs
// Routes:
//   GET  /metadata        the IdP metadata (SSO and SLO, HTTP-Redirect)
//   GET  /sso             an HTTP-Redirect AuthnRequest -> the login form
//   POST /login           login, password, rid -> an auto-submitting form POSTing SAMLResponse
//                         (+ RelayState) to the SP's ACS
//   GET  /slo             an HTTP-Redirect LogoutRequest -> "signed out" page
//   GET  /last            JSON: the last AuthnRequest id, SAMLResponse and LogoutRequest seen
// Users: alice/alice-pw, bob/bob-pw.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import saml from 'samlify';

const PORT = Number(process.env.IDP_PORT || 7001);
const BASE = `http://127.0.0.1:${PORT}`;
const SP_ENTITY = process.env.SP_ENTITY_ID;
const SP_ACS = process.env.SP_ACS_URL;
if (!SP_ENTITY || !SP_ACS) throw new Error('SP_ENTITY_ID and SP_ACS_URL are required');
const POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const USERS = {
  alice: { password: 'alice-pw', email: 'alice@example.org', given: 'Alice', family: 'Liddell' },
  bob: { password: 'bob-pw', email: 'bob@example.org', given: 'Bob', family: 'Builder' },
};

// samlify parses nothing without a schema validator; the SP under test does its own checks.
saml.setSchemaValidator({ validate: async () => 'ok' });

const idp = saml.IdentityProvider({
  entityID: `${BASE}/metadata`,
  privateKey: readFileSync(process.env.IDP_KEY),
  signingCert: readFileSync(process.env.IDP_CERT),
  nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
  singleSignOnService: [{ Binding: REDIRECT, Location: `${BASE}/sso` }],
  singleLogoutService: [{ Binding: REDIRECT, Location: `${BASE}/slo` }],
});
const sp = saml.ServiceProvider({
  entityID: SP_ENTITY,
  assertionConsumerService: [{ Binding: POST, Location: SP_ACS }],
  wantAssertionsSigned: true,
  wantMessageSigned: true,
});

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pending = new Map(); // rid -> { requestId, relayState }
const last = { requestId: null, samlResponse: null, relayState: null, logoutRequest: null };

const attribute = (name, value) => `<saml:Attribute Name="${name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">`
  + `<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">${esc(value)}</saml:AttributeValue></saml:Attribute>`;

// samlify's login response template has {AuthnStatement} and {AttributeStatement} holes that
// its tag replacement would XML-escape: they are filled first, then the plain values.
function template(requestId, user) {
  return (tpl) => {
    const now = new Date();
    const until = new Date(now.getTime() + 5 * 60 * 1000).toISOString();
    const id = `_${randomUUID()}`;
    const claims = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims';
    const filled = tpl
      .replace('{AuthnStatement}', `<saml:AuthnStatement AuthnInstant="${now.toISOString()}" SessionIndex="${id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`)
      .replace('{AttributeStatement}', `<saml:AttributeStatement>${attribute(`${claims}/nameidentifier`, user.email)}`
        + `${attribute(`${claims}/emailaddress`, user.email)}${attribute(`${claims}/givenname`, user.given)}`
        + `${attribute(`${claims}/surname`, user.family)}</saml:AttributeStatement>`);
    const context = saml.SamlLib.replaceTagsByValue(filled, {
      ID: id, AssertionID: `_${randomUUID()}`, Destination: SP_ACS, Audience: SP_ENTITY, EntityID: SP_ENTITY,
      SubjectRecipient: SP_ACS, Issuer: `${BASE}/metadata`, IssueInstant: now.toISOString(),
      AssertionConsumerServiceURL: SP_ACS, StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
      ConditionsNotBefore: now.toISOString(), ConditionsNotOnOrAfter: until,
      SubjectConfirmationDataNotOnOrAfter: until,
      NameIDFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress', NameID: user.email,
      InResponseTo: requestId,
    });
    return { id, context };
  };
}

const page = (title, inner) => `<!doctype html><html><head><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${inner}</body></html>`;
const loginForm = (rid, error) => page('Test IdP sign-in', `${error ? `<p id="error">${esc(error)}</p>` : ''}
<form method="post" action="/login"><input type="hidden" name="rid" value="${esc(rid)}">
<label>User <input name="login" id="login"></label><label>Password <input name="password" id="password" type="password"></label>
<button id="submit">Sign in</button></form>`);

async function formBody(req) {
  let b = '';
  for await (const c of req) { b += c; if (b.length > 1e6) throw new Error('body too large'); }
  return Object.fromEntries(new URLSearchParams(b));
}
function send(res, code, type, body) {
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}
const inflate = (b64) => inflateRawSync(Buffer.from(b64, 'base64')).toString('utf8');

http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, BASE);
    if (req.method === 'GET' && url.pathname === '/metadata') return send(res, 200, 'text/xml', idp.getMetadata());
    if (req.method === 'GET' && url.pathname === '/last') return send(res, 200, 'application/json', JSON.stringify(last));
    if (req.method === 'GET' && url.pathname === '/sso') {
      const query = Object.fromEntries(url.searchParams);
      const info = await idp.parseLoginRequest(sp, 'redirect', { query, octetString: url.search.slice(1) });
      const rid = randomUUID();
      last.requestId = info.extract.request.id;
      pending.set(rid, { requestId: info.extract.request.id, relayState: query.RelayState });
      return send(res, 200, 'text/html; charset=utf-8', loginForm(rid));
    }
    if (req.method === 'POST' && url.pathname === '/login') {
      const { rid, login, password } = await formBody(req);
      const p = pending.get(rid);
      if (!p) return send(res, 400, 'text/plain', 'unknown or used sign-in');
      const user = USERS[login];
      if (!user || user.password !== password) return send(res, 200, 'text/html; charset=utf-8', loginForm(rid, 'Wrong user or password'));
      pending.delete(rid);
      const requestInfo = { extract: { request: { id: p.requestId } } };
      const { context, entityEndpoint } = await idp.createLoginResponse(sp, requestInfo, 'post', { email: user.email }, template(p.requestId, user));
      last.samlResponse = context;
      last.relayState = p.relayState ?? null;
      const relay = p.relayState ? `<input type="hidden" name="RelayState" value="${esc(p.relayState)}">` : '';
      return send(res, 200, 'text/html; charset=utf-8', `<!doctype html><html><body onload="document.forms[0].submit()">
<form method="post" action="${esc(entityEndpoint)}"><input type="hidden" name="SAMLResponse" value="${esc(context)}">${relay}
<noscript><button>Continue</button></noscript></form></body></html>`);
    }
    if (req.method === 'GET' && url.pathname === '/slo') {
      const xml = inflate(url.searchParams.get('SAMLRequest') || '');
      const field = (re) => (xml.match(re) || [])[1] || null;
      last.logoutRequest = {
        xml,
        issuer: field(/<(?:\w+:)?Issuer[^>]*>([^<]*)</),
        nameId: field(/<(?:\w+:)?NameID[^>]*>([^<]*)</),
        destination: field(/Destination="([^"]*)"/),
      };
      return send(res, 200, 'text/html; charset=utf-8', page('Signed out', '<p id="signed-out">You are signed out of the test IdP.</p>'));
    }
    send(res, 404, 'text/plain', 'not found');
  } catch (e) {
    console.error(e);
    send(res, 400, 'text/plain', `error: ${e.message || e}`);
  }
}).listen(PORT, '127.0.0.1', () => console.log(`test SAML IdP on ${BASE}`));
process.on('SIGTERM', () => process.exit(0));
