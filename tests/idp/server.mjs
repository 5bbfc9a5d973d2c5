// Loopback test identity provider built on panva's `oidc-provider` (OpenID Certified).
// Everything below is configuration of that library plus thin test conveniences:
//   * auto-approving login/consent interaction (no browser needed),
//   * /__test/browse and /__test/device helpers that drive the real HTTP
//     flows server-side (cookie jar, redirects, xsrf form) for cookie-less callers,
//   * two extension grants registered through the library's public
//     registerGrantType API: RFC 8693 token exchange and Entra-style
//     on-behalf-of (jwt-bearer + requested_token_use=on_behalf_of),
//   * an optional post-middleware adding Entra-only token response members
//     (client_info, ext_expires_in, refresh_in, foci) and device `interval`/`message`.
//
// Environment (all optional):
//   IDP_HOST (127.0.0.1)  IDP_PORT (0 = pick a free port)
//   IDP_ISSUER_PATH (e.g. /<tenant>/v2.0: issuer http://host:port/<tenant>/v2.0, every endpoint under it,
//                    so an Entra-style authority http://host:port/<tenant> discovers at /<tenant>/v2.0/.well-known/...)
//   IDP_AT_TTL (3600) IDP_RT_TTL (1209600) IDP_ID_TTL (3600) IDP_CODE_TTL (60)
//   IDP_DEVICE_TTL (600) IDP_DEVICE_INTERVAL (1)  IDP_ROTATE_RT (always|default|never)
//   IDP_ENTRA_COMPAT (1 = add Entra extras; client_info only when the request has client_info=1)
//   IDP_ANY_TENANT (1 = with IDP_ISSUER_PATH=/<tenant>/v2.0, also serve /<other>/v2.0/... for any other
//                   GUID tenant, its discovery document naming endpoints under that tenant: one
//                   provider plays many tenants for multi-tenant daemon tests; tokencache's addition)
//   IDP_TOKEN_DELAY_MS (0; answer token requests this much later, so that tests can prove that
//                       concurrent clients wait for one request; tokencache's addition)
//   IDP_EXTRA_USERS (0; N more users user1..userN, sub 00000000-0000-4000-8000-<n as 12 digits>,
//                    for tests and benchmarks with many signed-in users; tokencache's addition)
//   IDP_TENANT_ID (GUID used as tid/utid)  IDP_DEFAULT_USER (alice)  IDP_FOCI_CLIENTS (public-app; comma list)
//   IDP_CLIENTS_FILE (JSON array replacing the built-in clients)
//   IDP_JWKS_FILE (JSON {keys:[private JWK]} for a fixed signing key; default: fresh RSA key per start)
//   IDP_READY_FILE (path; the ready JSON line is also written there)
//   IDP_TLS_CERT, IDP_TLS_KEY (PEM files: serve HTTPS instead of HTTP; tokencache's addition)
//   DEBUG=oidc-provider:* for library debug output
// tokencache's additions to the reference configuration: HTTPS (above), a count of token
// requests by grant type at GET /__test/stats (so tests can prove single-flight refreshes), and
// Entra-shaped instance discovery at /common/discovery/instance (127.0.0.1 and localhost are
// aliases), and a protected demo API at GET /api/me: it accepts only this provider's JWT access
// tokens issued for an API (an api://... or https://... audience, not the userinfo endpoint),
// checks signature, issuer and expiry, and answers the user's claims (the sample web apps call it).
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Provider, errors } from 'oidc-provider';
import { jwtVerify, importJWK } from 'jose';

const env = process.env;
const HOST = env.IDP_HOST || '127.0.0.1';
const PORT = Number(env.IDP_PORT || 0);
const MOUNT = (env.IDP_ISSUER_PATH || '').replace(/\/+$/, ''); // '' or '/something'
const num = (v, d) => (v === undefined || v === '' ? d : Number(v));
const AT_TTL = num(env.IDP_AT_TTL, 3600);
const RT_TTL = num(env.IDP_RT_TTL, 14 * 24 * 3600);
const ID_TTL = num(env.IDP_ID_TTL, 3600);
const CODE_TTL = num(env.IDP_CODE_TTL, 60);
const DEVICE_TTL = num(env.IDP_DEVICE_TTL, 600);
const DEVICE_INTERVAL = num(env.IDP_DEVICE_INTERVAL, 1);
const ROTATE_RT = env.IDP_ROTATE_RT || 'always';
const ENTRA = env.IDP_ENTRA_COMPAT === '1';
const TENANT_ID = env.IDP_TENANT_ID || '7e57a000-0000-4000-8000-000000000001';
const DEFAULT_USER = env.IDP_DEFAULT_USER || 'alice';
const ANY_TENANT = env.IDP_ANY_TENANT === '1';
const TOKEN_DELAY_MS = num(env.IDP_TOKEN_DELAY_MS, 0);
const FOCI_CLIENTS = new Set((env.IDP_FOCI_CLIENTS ?? 'public-app').split(',').filter(Boolean));

const GT_DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
const GT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const GT_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TT_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

// ---------------------------------------------------------------- accounts
const ACCOUNTS = [
  {
    sub: 'a11ce000-0000-4000-8000-00000000a11c', login: 'alice', name: 'Alice Example',
    given_name: 'Alice', family_name: 'Example', email: 'alice@example.test',
  },
  {
    sub: 'b0b00000-0000-4000-8000-000000000b0b', login: 'bob', name: 'Bob Example',
    given_name: 'Bob', family_name: 'Example', email: 'bob@example.test',
  },
];
for (let n = 1; n <= num(env.IDP_EXTRA_USERS, 0); n += 1) {
  ACCOUNTS.push({
    sub: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, login: `user${n}`, name: `User ${n}`,
    given_name: 'User', family_name: String(n), email: `user${n}@example.test`,
  });
}
for (const [i, a] of ACCOUNTS.entries()) {
  ACCOUNTS[i] = { ...a, oid: a.sub, tid: TENANT_ID, preferred_username: a.email, email_verified: true };
}
const bySub = new Map(ACCOUNTS.map((a) => [a.sub, a]));
const lookupLogin = (hint) => ACCOUNTS.find((a) => [a.login, a.email, a.sub].includes(hint));

// ---------------------------------------------------------------- clients
const DEFAULT_CLIENTS = [
  {
    // public native client: auth code + PKCE (mandatory for auth method none), device flow, refresh
    client_id: 'public-app',
    client_name: 'Public Test App',
    application_type: 'native', // loopback redirect URIs match on any port (RFC 8252 7.3)
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', GT_DEVICE],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback', 'http://127.0.0.1'],
  },
  {
    // confidential client: client_secret_post, client credentials, auth code, refresh, OBO / token exchange
    client_id: 'confidential-app',
    client_name: 'Confidential Test App',
    client_secret: 'confidential-secret',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token', GT_TOKEN_EXCHANGE, GT_JWT_BEARER],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:8400/callback'],
  },
];
const CLIENTS = env.IDP_CLIENTS_FILE ? JSON.parse(readFileSync(env.IDP_CLIENTS_FILE, 'utf8')) : DEFAULT_CLIENTS;

// ---------------------------------------------------------------- keys
function signingJwks() {
  if (env.IDP_JWKS_FILE) return JSON.parse(readFileSync(env.IDP_JWKS_FILE, 'utf8'));
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `test-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' }] };
}
const JWKS = signingJwks();

// ---------------------------------------------------------------- resources (APIs)
// Any absolute URI (api://x, https://x) is accepted as a resource. Scopes are "<resource>/<name>" as in Entra;
// when no `resource` parameter is sent the resource is derived from such scopes (MSAL never sends `resource`).
const resourceOfScope = (s) => {
  const m = /^([a-z][a-z0-9+.-]*:\/\/.+)\/[^/]+$/i.exec(s);
  return m ? m[1] : undefined;
};
const scopeTokens = (ctx) => {
  const out = new Set();
  const add = (s) => s && String(s).split(' ').filter(Boolean).forEach((t) => out.add(t));
  add(ctx.oidc?.params?.scope);
  const e = ctx.oidc?.entities || {};
  for (const k of ['AuthorizationCode', 'RefreshToken', 'DeviceCode']) add(e[k]?.scope);
  return out;
};
const derivedResources = (ctx) => [...new Set([...scopeTokens(ctx)].map(resourceOfScope).filter(Boolean))];

let ISSUER; // set once the port is known
let ORIGIN;

// ---------------------------------------------------------------- provider configuration
const configuration = {
  clients: CLIENTS,
  jwks: JWKS,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: async (ctx, sub) => {
    const a = bySub.get(sub);
    if (!a) return undefined;
    return {
      accountId: sub,
      async claims() {
        const { login, ...claims } = a;
        return claims;
      },
    };
  },
  claims: {
    openid: ['sub', 'oid', 'tid'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  conformIdTokenClaims: false, // put profile/email claims into the id_token like Entra does
  features: {
    devInteractions: { enabled: false }, // replaced by the auto-approving handler below
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, client, oneOf) {
        const derived = derivedResources(ctx);
        if (oneOf) {
          const pick = derived.find((r) => oneOf.includes(r));
          if (pick) return pick;
          return oneOf.length === 1 ? oneOf[0] : oneOf;
        }
        if (derived.length === 0) return undefined;
        return derived.length === 1 ? derived[0] : derived;
      },
      async useGrantedResource(ctx) {
        // with openid + one API, the access token is for the API (Entra behaviour) unless the
        // token request names scopes none of which belongs to an API (then: userinfo token)
        const requested = String(ctx.oidc.params.scope || '').split(' ').filter(Boolean);
        return requested.length === 0 || requested.some((s) => resourceOfScope(s));
      },
      async getResourceServerInfo(ctx, resource) {
        if (!/^[a-z][a-z0-9+.-]*:\/\/./i.test(resource) || resource.startsWith(ISSUER)) {
          throw new errors.InvalidTarget();
        }
        const scope = new Set([`${resource}/.default`]);
        for (const t of scopeTokens(ctx)) if (resourceOfScope(t) === resource) scope.add(t);
        return {
          scope: [...scope].join(' '),
          audience: resource,
          accessTokenTTL: AT_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: async (ctx, token) => {
    const a = token.accountId && bySub.get(token.accountId);
    return a ? { oid: a.oid, tid: a.tid, azp: token.clientId } : { tid: TENANT_ID, azp: token.clientId };
  },
  // Entra always issues a refresh token to MSAL (it always sends offline_access): keep offline_access alive.
  expiresWithSession: async () => false,
  rotateRefreshToken: ROTATE_RT === 'always' ? true : ROTATE_RT === 'never' ? false : undefined,
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || AT_TTL,
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || AT_TTL,
    AuthorizationCode: CODE_TTL,
    DeviceCode: DEVICE_TTL,
    IdToken: ID_TTL,
    RefreshToken: RT_TTL,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  interactions: { url: (ctx, interaction) => `${MOUNT}/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
};
if (configuration.rotateRefreshToken === undefined) delete configuration.rotateRefreshToken;

// ---------------------------------------------------------------- extension grants (OBO / token exchange)
// InvalidGrant always says 'grant request is invalid'; a custom error keeps the reason visible to tests.
const txError = (msg) => new errors.CustomOIDCProviderError('invalid_grant', msg);
async function subjectFromToken(provider, token) {
  if (typeof token === 'string' && token.split('.').length === 3) {
    const pub = await importJWK({ ...publicJwk(), alg: 'RS256' }, 'RS256');
    try {
      const { payload } = await jwtVerify(token, pub, { issuer: ISSUER, algorithms: ['RS256'] });
      return { accountId: payload.sub, aud: [].concat(payload.aud || []), clientId: payload.client_id };
    } catch (e) {
      throw txError(`subject token invalid (${e.code || e.message})`);
    }
  }
  const at = await provider.AccessToken.find(token);
  if (!at) throw txError('subject token invalid (not found or expired)');
  return { accountId: at.accountId, aud: [].concat(at.aud || []), clientId: at.clientId };
}

function publicJwk() {
  const { kty, n, e, kid } = JWKS.keys[0];
  return { kty, n, e, kid };
}

function makeExchangeHandler(provider, kind) {
  return async function exchangeHandler(ctx) {
    const { params, client } = ctx.oidc;
    const token = kind === 'obo' ? params.assertion : params.subject_token;
    if (!token) throw new errors.InvalidRequest(`missing required parameter '${kind === 'obo' ? 'assertion' : 'subject_token'}'`);
    if (kind === 'obo' && params.requested_token_use !== 'on_behalf_of') {
      throw new errors.InvalidRequest("requested_token_use must be 'on_behalf_of'");
    }
    if (kind === 'tx' && params.subject_token_type !== TT_ACCESS_TOKEN) {
      throw new errors.InvalidRequest(`subject_token_type must be ${TT_ACCESS_TOKEN}`);
    }
    const subject = await subjectFromToken(provider, token);
    const account = subject.accountId && bySub.get(subject.accountId);
    if (!account) throw txError('subject token does not represent a user');
    // the calling (middle-tier) client must be the audience of the incoming token
    const okAud = subject.aud.some((a) => a === client.clientId || a === `api://${client.clientId}`);
    if (!okAud) throw txError(`subject token audience ${JSON.stringify(subject.aud)} is not this client`);

    const requested = String(params.scope || '').split(' ').filter(Boolean);
    const resource = [].concat(params.resource || params.audience || [])[0]
      || [...new Set(requested.map(resourceOfScope).filter(Boolean))][0];
    if (!resource) throw new errors.InvalidTarget('no downstream resource (send scope "<resource>/<name>" or resource=)');
    const { features } = configuration;
    const info = await features.resourceIndicators.getResourceServerInfo(ctx, resource, client);
    const rsScopes = new Set(info.scope.split(' '));
    let scopes = requested.filter((s) => rsScopes.has(s));
    if (scopes.length === 0) scopes = [`${resource}/.default`];
    const wantsRefresh = requested.includes('offline_access') && client.grantTypeAllowed('refresh_token');

    const grant = new provider.Grant({ accountId: account.sub, clientId: client.clientId });
    grant.addResourceScope(resource, scopes.join(' '));
    if (wantsRefresh) grant.addOIDCScope('offline_access');
    const grantId = await grant.save();

    const gty = kind === 'obo' ? 'jwt_bearer' : 'token_exchange';
    const at = new provider.AccessToken({
      accountId: account.sub, client, grantId, gty, scope: scopes.join(' '),
    });
    at.resourceServer = new provider.ResourceServer(resource, info);
    ctx.oidc.entity('Account', { accountId: account.sub });
    ctx.oidc.entity('AccessToken', at);
    const accessToken = await at.save();

    let refreshToken;
    if (wantsRefresh) {
      const rt = new provider.RefreshToken({
        accountId: account.sub,
        client,
        grantId,
        gty,
        resource,
        rotations: 0,
        authTime: Math.floor(Date.now() / 1000),
        scope: ['offline_access', ...scopes].join(' '),
      });
      refreshToken = await rt.save();
    }

    ctx.body = Object.fromEntries(Object.entries({
      access_token: accessToken,
      expires_in: at.expiration,
      issued_token_type: kind === 'tx' ? TT_ACCESS_TOKEN : undefined,
      refresh_token: refreshToken,
      scope: at.scope,
      token_type: 'Bearer',
    }).filter(([, v]) => v !== undefined));
  };
}

// ---------------------------------------------------------------- HTTP plumbing
const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const sendJson = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
};

async function main() {
  let handler = (req, res) => { res.writeHead(503); res.end(); };
  const STATS = {};
  const TLS = env.IDP_TLS_CERT && env.IDP_TLS_KEY
    ? { cert: readFileSync(env.IDP_TLS_CERT), key: readFileSync(env.IDP_TLS_KEY) } : null;
  const server = TLS
    ? createTlsServer(TLS, (req, res) => handler(req, res))
    : createServer((req, res) => handler(req, res));
  await new Promise((resolve) => server.listen(PORT, HOST, resolve));
  const { port } = server.address();
  ORIGIN = `${TLS ? 'https' : 'http'}://${HOST}:${port}`;
  ISSUER = `${ORIGIN}${MOUNT}`;

  const provider = new Provider(ISSUER, configuration);
  provider.registerGrantType(GT_TOKEN_EXCHANGE, makeExchangeHandler(provider, 'tx'),
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'scope', 'resource', 'audience'],
    ['resource', 'audience']);
  provider.registerGrantType(GT_JWT_BEARER, makeExchangeHandler(provider, 'obo'),
    ['assertion', 'requested_token_use', 'scope', 'resource']);

  // pre-middleware: an MSAL-style request asks for offline_access without prompt=consent; OpenID Connect
  // Core makes the OP drop offline_access then. Adding prompt=consent (auto-approved below) keeps it.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/auth') {
      const q = { ...ctx.query };
      const scopes = String(q.scope || '').split(' ');
      const prompts = String(q.prompt || '').split(' ').filter(Boolean);
      if (scopes.includes('offline_access') && !prompts.includes('consent') && !prompts.includes('none')) {
        q.prompt = [...prompts, 'consent'].join(' ');
        ctx.query = q; // rewrites req.url; keep originalUrl consistent so mount-path detection still works
        if (MOUNT) ctx.req.originalUrl = `${MOUNT}${ctx.req.url}`;
      }
    }
    if (TOKEN_DELAY_MS && ctx.method === 'POST' && ctx.path === '/token') {
      await new Promise((resolve) => setTimeout(resolve, TOKEN_DELAY_MS));
    }
    await next();
    if (ctx.oidc?.route === 'token') {
      const gt = String(ctx.oidc.params?.grant_type || 'unknown');
      STATS[gt] = (STATS[gt] || 0) + 1;
    }
    // post-middleware: Entra-shaped extras on successful token / device authorization responses
    const body = ctx.body;
    if (ctx.status !== 200 || !body || typeof body !== 'object' || Buffer.isBuffer(body)) return;
    if (ctx.oidc?.route === 'device_authorization') {
      body.interval = DEVICE_INTERVAL;
      if (ENTRA) {
        body.message = `To sign in, use a web browser to open the page ${body.verification_uri} and enter the code ${body.user_code} to authenticate.`;
      }
    }
    if (ctx.oidc?.route === 'token' && ENTRA && body.access_token) {
      if (body.expires_in !== undefined) {
        body.ext_expires_in = body.expires_in;
        if (body.expires_in >= 7200) body.refresh_in = Math.floor(body.expires_in / 2);
      }
      const accountId = ctx.oidc.entities.Account?.accountId || ctx.oidc.entities.AccessToken?.accountId;
      const a = accountId && bySub.get(accountId);
      if (a && String(ctx.oidc.body?.client_info) === '1') body.client_info = b64url({ uid: a.oid, utid: a.tid });
      if (FOCI_CLIENTS.has(ctx.oidc.client?.clientId) && body.refresh_token) body.foci = '1';
    }
  });

  // auto-approving interactions: login (login_hint query/auth param, else default user) then consent
  async function interaction(req, res) {
    try {
      const url = new URL(req.url, ISSUER);
      const details = await provider.interactionDetails(req, res);
      const { prompt, params, session } = details;
      const hint = url.searchParams.get('login_hint') || params.login_hint || DEFAULT_USER;
      if (hint === 'deny') {
        return await provider.interactionFinished(req, res,
          { error: 'access_denied', error_description: 'End-User denied (test login_hint=deny)' },
          { mergeWithLastSubmission: false });
      }
      if (prompt.name === 'login') {
        const acct = lookupLogin(hint);
        if (!acct) {
          return await provider.interactionFinished(req, res,
            { error: 'access_denied', error_description: `unknown test user ${hint}` },
            { mergeWithLastSubmission: false });
        }
        return await provider.interactionFinished(req, res,
          { login: { accountId: acct.sub, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
      }
      if (prompt.name === 'consent') {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
        const d = prompt.details;
        if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
        if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
        if (d.missingResourceScopes) {
          for (const [ind, sc] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(ind, sc.join(' '));
        }
        const grantId = await grant.save();
        return await provider.interactionFinished(req, res,
          { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
      }
      return sendJson(res, 501, { error: 'unsupported_prompt', prompt: prompt.name });
    } catch (e) {
      return sendJson(res, 400, { error: e.name, error_description: e.message });
    }
  }

  // Server-side "browser": follows redirects with a cookie jar until it leaves the issuer origin.
  async function browse(startUrl, { jar = new Map(), loginHint, init } = {}) {
    let url = startUrl;
    let opts = init || { method: 'GET' };
    for (let i = 0; i < 25; i += 1) {
      const u = new URL(url);
      if (u.origin !== ORIGIN) return { left_issuer: true, location: u.href };
      if (loginHint && u.pathname.startsWith(`${MOUNT}/interaction/`)) u.searchParams.set('login_hint', loginHint);
      const headers = { ...(opts.headers || {}) };
      if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const r = await fetch(u, { ...opts, headers, redirect: 'manual' });
      for (const sc of r.headers.getSetCookie()) {
        const [pair, ...attrs] = sc.split(';');
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        const expired = attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
        if (!value || expired) jar.delete(name); else jar.set(name, value);
      }
      if ([301, 302, 303, 307, 308].includes(r.status)) {
        url = new URL(r.headers.get('location'), u).href;
        opts = { method: 'GET' };
        continue;
      }
      return { left_issuer: false, status: r.status, url: u.href, body: await r.text() };
    }
    return { left_issuer: false, error: 'too many redirects' };
  }

  async function testRoutes(req, res, url) {
    if (url.pathname === '/__test/browse') {
      const target = url.searchParams.get('url');
      if (!target) return sendJson(res, 400, { error: 'url query parameter required' });
      const out = await browse(target, { loginHint: url.searchParams.get('login_hint') || undefined });
      if (out.left_issuer && url.searchParams.get('redirect') === '1') {
        res.writeHead(302, { location: out.location });
        return res.end();
      }
      return sendJson(res, out.left_issuer ? 200 : 502, out);
    }
    if (url.pathname === '/__test/device') {
      const userCode = url.searchParams.get('user_code');
      if (!userCode) return sendJson(res, 400, { error: 'user_code query parameter required' });
      const jar = new Map();
      const page = await browse(`${ISSUER}/device`, { jar });
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.body || '')?.[1];
      if (!xsrf) return sendJson(res, 502, { error: 'no xsrf on /device page', page });
      const form = new URLSearchParams({ xsrf, user_code: userCode, confirm: 'yes' });
      const out = await browse(`${ISSUER}/device`, {
        jar,
        loginHint: url.searchParams.get('login_hint') || undefined,
        init: { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() },
      });
      const approved = /Sign-in Success/i.test(out.body || '');
      return sendJson(res, approved ? 200 : 502, { approved, status: out.status, url: out.url, body: approved ? undefined : out.body });
    }
    return sendJson(res, 404, { error: 'not_found' });
  }

  const providerCallback = provider.callback();
  // Entra-shaped instance discovery for the loopback hosts (tokencache's addition): the two
  // names of this machine are aliases of each other; any other host is an invalid instance.
  const instanceDiscovery = (req, res) => {
    STATS.instance_discovery = (STATS.instance_discovery || 0) + 1;
    const q = new URL(req.url, ORIGIN).searchParams;
    let host = '';
    try { host = new URL(q.get('authorization_endpoint') || '').hostname; } catch { /* empty */ }
    const aliases = ['127.0.0.1', 'localhost'];
    if (!aliases.includes(host)) {
      return sendJson(res, 400, { error: 'invalid_instance', error_description: 'AADSTS50049: Unknown or invalid instance.' });
    }
    return sendJson(res, 200, {
      tenant_discovery_endpoint: `${ISSUER}/.well-known/openid-configuration`,
      'api-version': '1.1',
      metadata: [{ preferred_network: '127.0.0.1', preferred_cache: '127.0.0.1', aliases }],
    });
  };

  // IDP_ANY_TENANT: /<other tenant>/v2.0/... is served by the one provider; only the discovery
  // document differs (its URLs name the tenant asked for, as Entra's do).
  const GUID = /^\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\/v2\.0)(\/.*)?$/i;
  let discoveryText;
  const otherTenant = async (req, res, tenant, rest) => {
    if (rest.split('?')[0] === '/.well-known/openid-configuration') {
      discoveryText ||= await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).text();
      STATS.tenants = STATS.tenants || {};
      STATS.tenants[tenant] = (STATS.tenants[tenant] || 0) + 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(discoveryText.split(ISSUER).join(`${ORIGIN}/${tenant}/v2.0`));
    }
    req.url = `${MOUNT}${rest}`;
    return handler(req, res);
  };

  // The demo API (a resource server): Bearer JWTs from this provider for an API audience.
  let apiKey;
  const demoApi = async (req, res) => {
    STATS.api_calls = (STATS.api_calls || 0) + 1;
    const refuse = (description) => {
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer error="invalid_token", error_description="${description}"`,
      });
      res.end(JSON.stringify({ error: 'invalid_token', error_description: description }));
    };
    const auth = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(req.headers.authorization || '');
    if (!auth) return refuse('no bearer token');
    apiKey ||= await importJWK({ ...publicJwk(), alg: 'RS256' }, 'RS256');
    let payload;
    try {
      ({ payload } = await jwtVerify(auth[1], apiKey, { issuer: ISSUER, algorithms: ['RS256'] }));
    } catch (e) {
      return refuse(`token rejected (${e.code || 'invalid'})`);
    }
    const audiences = [].concat(payload.aud || []);
    if (!audiences.some((a) => /^(api|https?):\/\//.test(a) && !a.startsWith(ORIGIN))) {
      return refuse('token is not for an API');
    }
    const a = bySub.get(payload.sub);
    if (!a) return refuse('token is not a user\'s');
    return sendJson(res, 200, {
      name: a.name, preferred_username: a.preferred_username, oid: a.oid, tid: a.tid,
      aud: payload.aud, scope: payload.scope, exp: payload.exp,
    });
  };

  handler = (req, res) => {
    if (req.url.split('?')[0] === '/common/discovery/instance') return instanceDiscovery(req, res);
    if (req.method === 'GET' && req.url.split('?')[0] === '/api/me') {
      return demoApi(req, res).catch((e) => sendJson(res, 500, { error: String(e) }));
    }
    // Entra's token endpoint path for the mounted tenant (what azure_identity calls without
    // discovery): an alias of the provider's own.
    if (ENTRA && MOUNT.endsWith('/v2.0')) {
      const [path, query] = req.url.split('?');
      if (path === `${MOUNT.slice(0, -'/v2.0'.length)}/oauth2/v2.0/token`) {
        req.url = `${MOUNT}/token${query === undefined ? '' : `?${query}`}`;
      }
    }
    const other = ANY_TENANT && MOUNT && GUID.exec(req.url);
    if (other && `/${other[1]}${other[2]}` !== MOUNT) {
      return otherTenant(req, res, other[1], other[3] || '/').catch((e) => sendJson(res, 500, { error: String(e) }));
    }
    if (MOUNT) {
      // mount the provider under the issuer path (what express' app.use(path, ...) would do)
      const path = req.url.split('?')[0];
      if (path !== MOUNT && !path.startsWith(`${MOUNT}/`)) return sendJson(res, 404, { error: 'not_found' });
      req.originalUrl = req.url;
      req.url = req.url.slice(MOUNT.length) || '/';
      if (req.url.startsWith('?')) req.url = `/${req.url}`;
    }
    const url = new URL(req.url, ORIGIN);
    if (url.pathname === '/__test/stats') return sendJson(res, 200, { token_requests: STATS });
    if (url.pathname.startsWith('/__test/')) {
      return testRoutes(req, res, url).catch((e) => sendJson(res, 500, { error: String(e) }));
    }
    if (req.method === 'GET' && /^\/interaction\/[^/]+$/.test(url.pathname)) return interaction(req, res);
    return providerCallback(req, res);
  };

  const ready = JSON.stringify({ ready: true, issuer: ISSUER, port, pid: process.pid, tenant_id: TENANT_ID });
  if (env.IDP_READY_FILE) writeFileSync(env.IDP_READY_FILE, `${ready}\n`);
  process.stdout.write(`${ready}\n`);
  const stop = () => process.exit(0); // all state is in memory; nothing to flush
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
