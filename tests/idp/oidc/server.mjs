// Local OpenID Connect provider for Portcullis integration tests and demos.
//
// Wraps panva's `oidc-provider` with: a fixed in-memory user store, a plain
// HTML login form (no JavaScript needed), automatic consent, and optional
// test-control endpoints (key rotation, private JWKS export).
//
// Contract with the parent process: configuration comes from environment
// variables (see README.md); once listening, exactly one JSON line is written
// to stdout: {"issuer":"http://127.0.0.1:PORT","port":PORT}. Everything else
// goes to stderr.

// oidc-provider prints its development notices with console.info (= stdout).
// Redirect all console output to stderr before anything can log, so stdout
// carries only the ready line.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

// ---------------------------------------------------------------------------
// Configuration from the environment

function fail(message) {
  console.error(`oidc-idp: ${message}`);
  process.exit(2);
}

function parseJsonEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    return fail(`${name} is not valid JSON: ${err.message}`);
  }
}

const PORT = Number.parseInt(process.env.OIDC_PORT ?? '0', 10);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) fail('OIDC_PORT must be an integer 0..65535');

const CLIENTS = parseJsonEnv('OIDC_CLIENTS', []);
if (!Array.isArray(CLIENTS)) fail('OIDC_CLIENTS must be a JSON array of client metadata objects');
if (CLIENTS.length === 0) console.error('oidc-idp: warning: OIDC_CLIENTS is empty, no client can log in');

const TEST_CONTROL = process.env.OIDC_TEST_CONTROL === '1';
// An IdP that does not honour a relying party's request for a fresh
// sign-in: `prompt` and `max_age` are dropped from authorization requests
// before the provider sees them, so a user with a session here is sent
// back with the old `auth_time`.
const IGNORE_REAUTH = process.env.OIDC_IGNORE_REAUTH === '1';
// PKCE is required for every client by default so tests prove the relying
// party sends it; OIDC_PKCE_REQUIRED=0 falls back to the library default
// (required only for public clients). Only S256 is ever accepted.
const PKCE_REQUIRED = process.env.OIDC_PKCE_REQUIRED !== '0';

// ---------------------------------------------------------------------------
// Signing keys

// RFC 7638 thumbprint, used as `kid` when a key has none.
function thumbprint(jwk) {
  const members = {
    RSA: ['e', 'kty', 'n'],
    EC: ['crv', 'kty', 'x', 'y'],
    OKP: ['crv', 'kty', 'x'],
  }[jwk.kty];
  if (!members) fail(`unsupported key type ${jwk.kty} in OIDC_KEYS_FILE`);
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

function generateRsaKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: thumbprint(jwk), alg: 'RS256', use: 'sig' };
}

function loadKeys() {
  const file = process.env.OIDC_KEYS_FILE;
  if (!file) return [generateRsaKey()];
  let jwks;
  try {
    jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`cannot read OIDC_KEYS_FILE ${file}: ${err.message}`);
  }
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) fail('OIDC_KEYS_FILE must hold a JWKS: {"keys":[...]}');
  return jwks.keys.map((k) => {
    if (!k.d) fail(`key ${k.kid ?? '(no kid)'} in OIDC_KEYS_FILE has no private part`);
    return { ...k, kid: k.kid ?? thumbprint(k) };
  });
}

// Current private keys; the first usable one signs (oidc-provider keeps order).
let signingKeys = loadKeys();
// A key never published, for /__test/sign {"foreign": true}.
let foreignKey;

// ---------------------------------------------------------------------------
// Users

const USERS = {
  alice: {
    password: 'alice-pw',
    claims: {
      sub: 'alice',
      preferred_username: 'alice',
      email: 'alice@example.com',
      email_verified: true,
      name: 'Alice Example',
      groups: ['admins', 'staff'],
    },
  },
  bob: {
    password: 'bob-pw',
    claims: {
      sub: 'bob',
      preferred_username: 'bob',
      email: 'bob@example.org',
      email_verified: false,
      name: 'Bob Builder',
      groups: ['staff'],
    },
  },
  carol: {
    password: 'carol-pw',
    claims: {
      sub: 'carol',
      email: 'carol@example.com',
      email_verified: false,
      name: 'Carol Outsider',
      groups: ['contractors'],
    },
  },
  // In 500 directory groups besides admins and staff: a session too big
  // for one cookie unless `session.groups` filters it.
  many: {
    password: 'many-pw',
    claims: {
      sub: 'many',
      preferred_username: 'many',
      email: 'many@example.com',
      email_verified: true,
      name: 'Many Groups',
      groups: [
        'admins',
        'staff',
        ...Array.from({ length: 500 }, (_, i) => `cn=grp-${String(i).padStart(3, '0')},ou=groups,dc=example,dc=com`),
      ],
    },
  },
  // Entra ID's group overage: a distributed claim instead of `groups`
  // (oidc-provider releases `_claim_names` / `_claim_sources` as given).
  dave: {
    password: 'dave-pw',
    claims: {
      sub: 'dave',
      preferred_username: 'dave',
      email: 'dave@example.com',
      email_verified: true,
      name: 'Dave Overage',
      _claim_names: { groups: 'src1' },
      _claim_sources: {
        src1: { endpoint: 'https://graph.microsoft.com/v1.0/users/dave/getMemberObjects' },
      },
    },
  },
};

// Login name -> account id (here they coincide); constant-time password check.
function authenticate(login, password) {
  const user = Object.hasOwn(USERS, login) ? USERS[login] : undefined;
  const expected = Buffer.from(user?.password ?? 'x'.repeat(16));
  const given = Buffer.from(password ?? '');
  const ok = expected.length === given.length && crypto.timingSafeEqual(expected, given);
  return user && ok ? user.claims.sub : undefined;
}

async function findAccount(_ctx, sub) {
  const user = Object.values(USERS).find((u) => u.claims.sub === sub);
  if (!user) return undefined;
  return {
    accountId: sub,
    // oidc-provider filters these by granted scopes/claims.
    async claims() {
      return structuredClone(user.claims);
    },
  };
}

// ---------------------------------------------------------------------------
// HTML

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

// No external resources (fonts, CSS): tests run without internet.
function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:24em;margin:3em auto}label,input,button{display:block;width:100%;margin:.3em 0}.error{color:#b00}</style>
</head>
<body>
<h1>${esc(title)}</h1>
${body}
</body>
</html>
`;
}

function loginPage(uid, { clientId, login = '', error } = {}) {
  return page('Sign in to the test IdP', `
${clientId ? `<p>Client: <code id="client-id">${esc(clientId)}</code></p>` : ''}
${error ? `<p class="error" id="error" role="alert">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="login">Username</label>
  <input id="login" name="login" type="text" value="${esc(login)}" autofocus required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button id="submit" type="submit">Sign in</button>
</form>
<form id="abort-form" method="post" action="/interaction/${esc(uid)}/abort">
  <button id="abort" type="submit">Cancel</button>
</form>`);
}

// The provider's own confirmation form only carries `xsrf`; add `logout=yes`
// (end the whole IdP session) and submit it with JavaScript, so browsers log
// out without a click. Non-JS clients POST the form as is.
async function logoutSource(ctx, form) {
  const autoForm = form.replace('</form>',
    '<input type="hidden" name="logout" value="yes"/><button id="logout" type="submit">Sign out</button></form>');
  ctx.body = page('Signing out', `${autoForm}
<script>document.addEventListener('DOMContentLoaded', function () { document.forms[0].submit(); });</script>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p id="signed-out">You have been signed out of the test IdP.</p>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Error', Object.entries(out)
    .map(([k, v]) => `<p><strong>${esc(k)}</strong>: <span class="${esc(k)}">${esc(v)}</span></p>`).join('\n'));
}

// ---------------------------------------------------------------------------
// Provider

// Fixed for the process lifetime so cookies survive provider rebuilds.
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];

function providerConfig(port) {
  // Cookies are scoped by host, not port: prefix names with the port so the
  // IdP cookies never collide with the proxy's (also on 127.0.0.1) nor with a
  // second IdP instance in the same browser / cookie jar.
  const prefix = `idp${port}`;
  return {
    // oidc-provider mutates/caches these; hand each instance its own copies.
    clients: structuredClone(CLIENTS),
    jwks: { keys: structuredClone(signingKeys) },
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'groups'],
      groups: ['groups'],
    },
    // Release scope claims in the ID token too, not only at userinfo.
    conformIdTokenClaims: false,
    cookies: {
      names: {
        session: `${prefix}_session`,
        interaction: `${prefix}_interaction`,
        resume: `${prefix}_interaction_resume`,
      },
      // No `secure` flag: oidc-provider only adds it when the request is
      // https (ctx.secure), and `proxy` stays off so X-Forwarded-Proto from
      // the proxy under test cannot flip that. The library default for long
      // cookies is SameSite=None, which browsers reject without Secure, hence
      // Lax (fine: the IdP is only reached by top-level navigations).
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
      keys: COOKIE_KEYS,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      // Sends a logout token to each client registered with a
      // `backchannel_logout_uri` (in OIDC_CLIENTS) when its user signs out
      // here; clients without one are not called.
      backchannelLogout: { enabled: true },
      revocation: { enabled: false },
      introspection: { enabled: false },
      userinfo: { enabled: true },
    },
    pkce: {
      methods: ['S256'],
      required: PKCE_REQUIRED ? () => true : (_ctx, client) => client.clientAuthMethod === 'none',
    },
    ttl: {
      AuthorizationCode: 60,
      AccessToken: 3600,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Interaction: 3600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
    clientBasedCORS: () => true,
    renderError,
  };
}

let boundPort;
let issuer;
let provider;
let providerCallback;

// Build (or rebuild, after key rotation) the Provider. State lives in
// oidc-provider's default MemoryAdapter, whose storage is module-global, so a
// new instance sees the sessions, interactions, grants and codes of the old one.
function buildProvider(port) {
  const next = new Provider(issuer, providerConfig(port));
  next.on('server_error', (_ctx, err) => console.error('oidc-idp: server_error:', err));
  if (process.env.OIDC_DEBUG === '1') {
    for (const ev of ['authorization.error', 'grant.error', 'end_session.error', 'userinfo.error', 'jwks.error', 'backchannel.error']) {
      next.on(ev, (_ctx, err) => console.error(`oidc-idp: ${ev}:`, err.message, err.error_description ?? ''));
    }
  }
  provider = next;
  providerCallback = next.callback();
}

// ---------------------------------------------------------------------------
// Interaction routes (login form, auto-consent)

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

// Grant everything that was requested, as a user clicking "Allow" would.
async function autoConsent(req, res, details) {
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([\w-]+)(?:\/(login|abort))?$/);
  if (!m) return send(res, 404, page('Not found', '<p>Unknown interaction route.</p>'));
  const [, uid, action] = m;

  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return send(res, 400, page('Error', `<p class="error">${esc(err.error_description ?? err.message)}</p>`));
  }
  if (details.uid !== uid) {
    return send(res, 400, page('Error', '<p class="error">interaction id mismatch</p>'));
  }
  const clientId = details.params.client_id;

  if (!action && req.method === 'GET') {
    if (details.prompt.name === 'consent') return autoConsent(req, res, details);
    return send(res, 200, loginPage(uid, { clientId, login: details.params.login_hint }));
  }

  if (req.method !== 'POST') return send(res, 405, page('Error', '<p>Method not allowed.</p>'));

  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  if (action === 'login') {
    if (details.prompt.name !== 'login') {
      return send(res, 400, page('Error', '<p class="error">no login pending for this interaction</p>'));
    }
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const accountId = authenticate(login, form.get('password'));
    if (!accountId) {
      // 200, not 401: browsers and form-driving tests treat this as a normal page.
      return send(res, 200, loginPage(uid, { clientId, login, error: 'Invalid username or password.' }));
    }
    return provider.interactionFinished(req, res, {
      login: { accountId, amr: ['pwd'] },
    }, { mergeWithLastSubmission: false });
  }

  return send(res, 404, page('Not found', '<p>Unknown interaction route.</p>'));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------
// Test-control routes (OIDC_TEST_CONTROL=1 only)

async function handleControl(req, res, url) {
  const json = (status, body) => send(res, status, JSON.stringify(body), 'application/json');

  if (url.pathname === '/__test/rotate-keys' && req.method === 'POST') {
    // keep_old=1 keeps publishing the previous keys (after the new one, which
    // therefore signs); by default they are dropped, as after a hard rotation.
    const keepOld = url.searchParams.get('keep_old') === '1';
    const key = generateRsaKey();
    signingKeys = keepOld ? [key, ...signingKeys] : [key];
    buildProvider(boundPort);
    console.error(`oidc-idp: rotated signing key, new kid ${key.kid}${keepOld ? ' (old keys kept)' : ''}`);
    return json(200, { kid: key.kid, kids: signingKeys.map((k) => k.kid) });
  }

  if (url.pathname === '/__test/jwks-private' && req.method === 'GET') {
    return json(200, { keys: signingKeys });
  }

  // Signs arbitrary claims, so tests can present a relying party with ID
  // tokens a real provider would never issue (wrong aud/iss, expired, alg
  // none, HMAC with the client secret, a key it never published). Body:
  // {"claims": {...}, "alg": "RS256" | "none" | "HS256", "secret": "..."
  // (HS256 only), "kid": "..." (optional; default the signing key's),
  // "foreign": true (RS256 with a key generated for this process and never
  // published in /jwks)}.
  if (url.pathname === '/__test/sign' && req.method === 'POST') {
    const body = JSON.parse(await readBody(req));
    const alg = body.alg || 'RS256';
    const header = { alg, typ: 'JWT' };
    if (body.foreign) foreignKey ??= generateRsaKey();
    const rsaKey = body.foreign ? foreignKey : signingKeys[0];
    if (alg === 'RS256') header.kid = body.kid || rsaKey.kid;
    const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const input = `${b64(header)}.${b64(body.claims)}`;
    let sig = '';
    if (alg === 'RS256') {
      const key = crypto.createPrivateKey({ key: rsaKey, format: 'jwk' });
      sig = crypto.createSign('RSA-SHA256').update(input).sign(key).toString('base64url');
    } else if (alg === 'HS256') {
      sig = crypto.createHmac('sha256', body.secret).update(input).digest('base64url');
    } else if (alg !== 'none') {
      return json(400, { error: `unsupported alg ${alg}` });
    }
    return json(200, { jwt: `${input}.${sig}` });
  }

  return json(404, { error: 'not_found' });
}

// ---------------------------------------------------------------------------
// HTTP server

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  let handler;
  if (url.pathname.startsWith('/interaction/')) handler = handleInteraction;
  else if (TEST_CONTROL && url.pathname.startsWith('/__test/')) handler = handleControl;

  if (!handler) {
    if (IGNORE_REAUTH && url.pathname === '/auth') {
      url.searchParams.delete('prompt');
      url.searchParams.delete('max_age');
      req.url = `${url.pathname}?${url.searchParams}`;
    }
    return providerCallback(req, res);
  }

  return handler(req, res, url).catch((err) => {
    console.error('oidc-idp: handler error:', err);
    if (!res.headersSent) send(res, 500, page('Error', `<p class="error">${esc(err.message)}</p>`));
    else res.destroy();
  });
});

server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${PORT}: ${err.message}`));

// oidc-provider validates static clients lazily, on first use; do it now so a
// bad OIDC_CLIENTS fails the start instead of the first login.
async function validateClients() {
  for (const client of CLIENTS) {
    try {
      await provider.Client.find(client?.client_id);
    } catch (err) {
      fail(`invalid client ${JSON.stringify(client?.client_id)} in OIDC_CLIENTS: ${err.error_description ?? err.message}`);
    }
  }
}

server.listen(PORT, '127.0.0.1', async () => {
  const { port } = server.address();
  boundPort = port;
  issuer = `http://127.0.0.1:${port}`;
  try {
    buildProvider(port);
  } catch (err) {
    fail(`invalid provider configuration: ${err.error_description ?? err.message}`);
  }
  await validateClients();
  console.error(`oidc-idp: listening, issuer ${issuer}, ${CLIENTS.length} client(s), signing kid ${signingKeys[0].kid}${TEST_CONTROL ? ', test control on' : ''}`);
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

// Optional: exit when the parent closes our stdin (e.g. it crashed or was killed
// without cleaning up), so no orphaned IdP keeps the port.
if (process.env.OIDC_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.resume();
}
