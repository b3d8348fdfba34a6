// The identity provider of the SSO suite (e2e/sso.mjs): panva's oidc-provider, a certified
// OpenID Provider, on loopback, with its own login and consent pages, so the browser signs in
// the way a user does. scripts/e2e.sh starts it before the SSO gatehouse (that gatehouse runs
// OpenID discovery at start) and stops it by its PID.
//
//   OIDC_PORT=… OIDC_ROGUE_PORT=… OIDC_CLIENT_ID=… OIDC_CLIENT_SECRET=… \
//   OIDC_REDIRECT_URIS='<callback> <callback> …' node oidc-provider.mjs
//
// Two issuers in this one process:
//   - http://127.0.0.1:$OIDC_PORT: the provider. Discovery, /auth (authorize), /token, /me
//     (OIDC userinfo), /jwks, plus two routes of ours:
//       GET  /profile         a plain OAuth 2.0 profile for the generic `oauth2` driver: the
//                             account's claims (names nested: name.given / name.family) for a
//                             valid access token, 401 otherwise;
//       POST /test/accounts/<id>  {claims} merged into the account (SYNC_USER_INFO checks).
//   - http://127.0.0.1:$OIDC_ROGUE_PORT: the same provider, except that its /jwks publishes a
//     different RSA key under the kid it signs with: its ID tokens are signed with a key it
//     does not publish, and a relying party must refuse them.
// Accounts: alice, bob, carol, dave, each with password "<name>-pw", an email, names and a
// `groups` claim (in the profile scope). Sessions, codes and grants live in memory.
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const PORT = Number(need('OIDC_PORT'));
const ROGUE_PORT = Number(need('OIDC_ROGUE_PORT'));
const CLIENT_ID = need('OIDC_CLIENT_ID');
const CLIENT_SECRET = need('OIDC_CLIENT_SECRET');
const REDIRECT_URIS = need('OIDC_REDIRECT_URIS').split(/\s+/).filter(Boolean);

const account = (id, given, family, groups) => ({
  password: `${id}-pw`,
  claims: {
    email: `${id}.sso@example.com`, email_verified: true, name: `${given} ${family}`,
    given_name: given, family_name: family, preferred_username: id, groups,
  },
});
const ACCOUNTS = {
  alice: account('alice', 'Alice', 'Liddell', ['e2e-staff', 'e2e-editors']),
  bob: account('bob', 'Bob', 'Builder', ['e2e-editors']),
  carol: account('carol', 'Carol', 'Danvers', ['e2e-editors']),
  dave: account('dave', 'Dave', 'Bowman', ['e2e-tfa']),
};

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `e2e-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

function makeProvider(issuer, key) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [key] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'groups'],
    },
    // Scope claims in the ID token too (many real providers put them there).
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => false, methods: ['S256'] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, sub) {
      const a = ACCOUNTS[sub];
      if (!a) return undefined;
      return { accountId: sub, async claims() { return { sub, ...a.claims }; } };
    },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, RefreshToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
  });
  provider.on('server_error', (ctx, err) => console.error(`${issuer} server_error`, err));
  return provider;
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>${body}</body></html>`;
const loginPage = (uid, error) => page('Sign in to the e2e provider', `${error ? `<p id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" id="login-form">
<label>Username <input name="login" id="login" autofocus></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="submit">Sign in</button></form>`);
const consentPage = (uid, client, scopes) => page('Allow access?', `
<p id="consent-text">${esc(client)} asks for: <span id="scopes">${esc(scopes.join(' ') || '(nothing new)')}</span></p>
<form method="post" action="/interaction/${esc(uid)}/consent" id="consent-form">
<button type="submit" id="allow">Allow</button></form>`);

async function readBody(req, limit = 100000) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error('body too large');
  }
  return body;
}
function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/** Login and consent pages, the profile endpoint and the test hooks, around provider.callback(). */
function serve(provider, extra) {
  const callback = provider.callback();
  return http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      if (extra && (await extra(req, res, url))) return;
      const m = url.pathname.match(/^\/interaction\/([\w-]+)(?:\/(login|consent))?$/);
      if (!m) return callback(req, res);
      const details = await provider.interactionDetails(req, res);
      const { prompt, uid, params } = details;
      if (req.method === 'GET' && !m[2]) {
        if (prompt.name === 'login') return send(res, 200, 'text/html; charset=utf-8', loginPage(uid));
        const scopes = [...(prompt.details.missingOIDCScope || []), ...Object.values(prompt.details.missingResourceScopes || {}).flat()];
        return send(res, 200, 'text/html; charset=utf-8', consentPage(uid, params.client_id, scopes));
      }
      if (req.method === 'POST' && m[2] === 'login') {
        const form = new URLSearchParams(await readBody(req));
        const a = ACCOUNTS[form.get('login')];
        if (!a || a.password !== form.get('password')) {
          return send(res, 200, 'text/html; charset=utf-8', loginPage(uid, 'Invalid username or password'));
        }
        return provider.interactionFinished(req, res, { login: { accountId: form.get('login') } }, { mergeWithLastSubmission: false });
      }
      if (req.method === 'POST' && m[2] === 'consent') {
        await readBody(req);
        // Grant what the prompt lists as missing (oidc-provider's own consent recipe).
        let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
        grant ||= new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
        const d = prompt.details;
        if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
        if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) grant.addResourceScope(indicator, scopes.join(' '));
        const grantId = await grant.save();
        return provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
      }
      send(res, 405, 'text/plain', 'method not allowed');
    } catch (err) {
      console.error(err);
      if (!res.headersSent) send(res, 400, 'text/plain', `interaction error: ${err.message}`);
    }
  });
}

const ISSUER = `http://127.0.0.1:${PORT}`;
const ROGUE_ISSUER = `http://127.0.0.1:${ROGUE_PORT}`;
const key = signingKey();
const provider = makeProvider(ISSUER, key);
const rogueKey = signingKey();
const rogue = makeProvider(ROGUE_ISSUER, rogueKey);
// What the rogue issuer publishes: another key under the kid it signs with.
const other = signingKey();
const published = { kty: other.kty, n: other.n, e: other.e, alg: 'RS256', use: 'sig', kid: rogueKey.kid };

const main = serve(provider, async (req, res, url) => {
  if (req.method === 'GET' && url.pathname === '/profile') {
    const auth = req.headers.authorization || '';
    const token = auth.startsWith('Bearer ') ? await provider.AccessToken.find(auth.slice(7)) : undefined;
    const a = token && ACCOUNTS[token.accountId];
    if (!a) {
      send(res, 401, 'application/json', JSON.stringify({ error: 'invalid_token' }));
      return true;
    }
    const c = a.claims;
    send(res, 200, 'application/json', JSON.stringify({
      sub: token.accountId, email: c.email, name: { given: c.given_name, family: c.family_name }, groups: c.groups,
    }));
    return true;
  }
  const t = url.pathname.match(/^\/test\/accounts\/(\w+)$/);
  if (req.method === 'POST' && t) {
    const a = ACCOUNTS[t[1]];
    if (!a) {
      send(res, 404, 'application/json', '{"error":"no such account"}');
      return true;
    }
    Object.assign(a.claims, JSON.parse(await readBody(req, 10000)));
    send(res, 200, 'application/json', JSON.stringify(a.claims));
    return true;
  }
  return false;
});
const rogueServer = serve(rogue, async (req, res, url) => {
  if (url.pathname !== '/jwks') return false;
  send(res, 200, 'application/jwk-set+json; charset=utf-8', JSON.stringify({ keys: [published] }));
  return true;
});

main.listen(PORT, '127.0.0.1', () => console.log(`oidc-provider: issuer ${ISSUER} (kid ${key.kid})`));
rogueServer.listen(ROGUE_PORT, '127.0.0.1', () => console.log(`oidc-provider: rogue issuer ${ROGUE_ISSUER} (signs with kid ${rogueKey.kid}, publishes another key under it)`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { main.close(); rogueServer.close(); process.exit(0); });
