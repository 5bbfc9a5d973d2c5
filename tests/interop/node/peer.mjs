// Drives the real @azure/msal-node against a loopback network client (no network at all) and
// keeps its token cache in a JSON file, so the Rust tests can check what msal-node writes and
// that msal-node reads what tokencache writes.
//
//   node peer.mjs sign-in FILE   a user signs in (acquireTokenByCode, a family refresh token)
//                                 and a daemon signs in (acquireTokenByClientCredential)
//   node peer.mjs refresh FILE   the user's tokens are refreshed (acquireTokenSilent with
//                                 forceRefresh), which finds the refresh token in FILE
//
// FILE is read first when it exists and written at the end. Prints one JSON line describing
// what msal-node did (the secrets it was given and the account it used).
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { ConfidentialClientApplication, LogLevel } from "@azure/msal-node";

export const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
export const UID = "5e1f3b3c-8a07-4a4e-9f4b-2cbd2a3b1c0d";
export const CLIENT_ID = "4a1aa1d5-c567-49d0-ad0b-cd957a47f842";
const HOST = "login.microsoftonline.com";

const [command, file] = process.argv.slice(2);
if (!["sign-in", "refresh"].includes(command) || !file) {
  console.error("usage: node peer.mjs sign-in|refresh FILE");
  process.exit(2);
}

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);
const idToken = () =>
  [
    b64url({ alg: "none", typ: "JWT" }),
    b64url({
      aud: CLIENT_ID,
      iss: `https://${HOST}/${TENANT}/v2.0`,
      iat: now(),
      nbf: now(),
      exp: now() + 3600,
      name: "Ada Lovelace",
      oid: UID,
      preferred_username: "ada@contoso.example",
      sub: "subject-ada",
      tid: TENANT,
      ver: "2.0",
    }),
    "",
  ].join(".");

// Every secret handed out is numbered, so the test can tell which one a cache holds.
let issued = 0;
const secret = (kind) => `${kind}-${command}-${++issued}`;
const given = {};

function tokenResponse(form) {
  const grant = form.get("grant_type");
  if (grant === "client_credentials") {
    given.app_access_token = secret("node-app-at");
    return {
      token_type: "Bearer",
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: given.app_access_token,
    };
  }
  given.access_token = secret("node-at");
  given.refresh_token = secret("node-rt");
  given.grant_type = grant;
  if (grant === "refresh_token") given.refresh_token_used = form.get("refresh_token");
  return {
    token_type: "Bearer",
    scope: "User.Read openid profile",
    expires_in: 3599,
    ext_expires_in: 3599,
    access_token: given.access_token,
    refresh_token: given.refresh_token,
    id_token: idToken(),
    client_info: b64url({ uid: UID, utid: TENANT }),
    foci: "1",
  };
}

const openidConfiguration = {
  token_endpoint: `https://${HOST}/${TENANT}/oauth2/v2.0/token`,
  authorization_endpoint: `https://${HOST}/${TENANT}/oauth2/v2.0/authorize`,
  end_session_endpoint: `https://${HOST}/${TENANT}/oauth2/v2.0/logout`,
  issuer: `https://${HOST}/${TENANT}/v2.0`,
  jwks_uri: `https://${HOST}/${TENANT}/discovery/v2.0/keys`,
  response_types_supported: ["code"],
};
const instanceDiscovery = {
  tenant_discovery_endpoint: `https://${HOST}/${TENANT}/v2.0/.well-known/openid-configuration`,
  "api-version": "1.1",
  metadata: [
    {
      preferred_network: HOST,
      preferred_cache: HOST,
      aliases: [HOST, "login.windows.net", "login.microsoft.com", "sts.windows.net"],
    },
  ],
};

const json = (body) => ({ status: 200, headers: { "content-type": "application/json" }, body });
const networkClient = {
  async sendGetRequestAsync(url) {
    if (url.includes("openid-configuration")) return json(openidConfiguration);
    if (url.includes("discovery/instance")) return json(instanceDiscovery);
    throw new Error(`unexpected GET ${url}`);
  },
  async sendPostRequestAsync(url, options) {
    if (!url.includes("/oauth2/v2.0/token")) throw new Error(`unexpected POST ${url}`);
    return json(tokenResponse(new URLSearchParams(options.body)));
  },
};

const cachePlugin = {
  async beforeCacheAccess(context) {
    if (existsSync(file)) context.tokenCache.deserialize(readFileSync(file, "utf8"));
  },
  async afterCacheAccess(context) {
    if (context.cacheHasChanged) writeFileSync(file, context.tokenCache.serialize());
  },
};

const app = new ConfidentialClientApplication({
  auth: {
    clientId: CLIENT_ID,
    authority: `https://${HOST}/${TENANT}`,
    clientSecret: "peer-client-secret",
  },
  cache: { cachePlugin },
  system: {
    networkClient,
    loggerOptions: { logLevel: LogLevel.Error, loggerCallback: (_, m) => console.error(m) },
  },
});

const scopes = ["User.Read"];
if (command === "sign-in") {
  await app.acquireTokenByCode({
    code: "authorization-code",
    scopes,
    redirectUri: "http://localhost:8400/redirect",
  });
  await app.acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] });
} else {
  const accounts = await app.getTokenCache().getAllAccounts();
  if (accounts.length !== 1) throw new Error(`expected one account, found ${accounts.length}`);
  given.home_account_id = accounts[0].homeAccountId;
  await app.acquireTokenSilent({ account: accounts[0], scopes, forceRefresh: true });
}
console.log(JSON.stringify(given));
