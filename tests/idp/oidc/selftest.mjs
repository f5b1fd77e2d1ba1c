// Self-check for server.mjs: starts it as a child process and drives real
// logins with plain HTTP (fetch + a tiny cookie jar, no JavaScript), the way a
// non-browser integration test would. Exit code 0 = all checks passed.
//
//   node selftest.mjs

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENT = {
  client_id: 'selftest',
  client_secret: 'selftest-secret',
  redirect_uris: ['http://127.0.0.1:9/cb'],
  post_logout_redirect_uris: ['http://127.0.0.1:9/logged-out'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'RS256',
  response_types: ['code'],
  grant_types: ['authorization_code'],
};
const REDIRECT_URI = CLIENT.redirect_uris[0];

class CheckFailed extends Error {}
function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}
function ok(message) {
  console.log(`ok - ${message}`);
}

// ---------------------------------------------------------------------------
// Child process

let child;
let childStderr = '';

function startServer() {
  child = spawn(process.execPath, [path.join(HERE, 'server.mjs')], {
    cwd: HERE,
    env: {
      ...process.env,
      OIDC_EXIT_ON_STDIN_EOF: '', // stdin is ignored here, i.e. at EOF already
      OIDC_PKCE_REQUIRED: '1',
      OIDC_PORT: '0',
      OIDC_CLIENTS: JSON.stringify([CLIENT]),
      OIDC_TEST_CONTROL: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Always drain stderr (a full pipe would block the child); shown on failure.
  child.stderr.setEncoding('utf8').on('data', (d) => { childStderr += d; });

  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new CheckFailed('server did not print its ready line within 10s')), 10_000);
    child.on('exit', (code) => reject(new CheckFailed(`server exited early with code ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl === -1) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.slice(0, nl)));
      } catch {
        reject(new CheckFailed(`ready line is not JSON: ${out.slice(0, nl)}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------
// HTTP helpers

// Minimal RFC 6265 jar for a single host: honours Path and deletion.
class CookieJar {
  #cookies = new Map(); // "path\0name" -> { name, value, path }

  store(setCookies, requestPath) {
    for (const header of setCookies) {
      const [pair, ...attrs] = header.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let cookiePath = requestPath.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        if (k.toLowerCase() === 'path') cookiePath = v;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const key = `${cookiePath}\0${name}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path: cookiePath });
    }
  }

  header(requestPath) {
    return [...this.#cookies.values()]
      .filter((c) => requestPath === c.path || requestPath.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

async function request(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const u = new URL(url);
  const init = { method, redirect: 'manual', headers: { ...headers }, signal: AbortSignal.timeout(5000) };
  const cookie = jar?.header(u.pathname);
  if (cookie) init.headers.cookie = cookie;
  if (form) {
    init.body = new URLSearchParams(form).toString();
    init.headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(u, init);
  jar?.store(res.headers.getSetCookie(), u.pathname);
  const body = await res.text();
  const location = res.headers.get('location');
  return { status: res.status, body, location: location && new URL(location, u).href, headers: res.headers };
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const decodeJwt = (jwt) => {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
};

function verifyJwt(jwt, jwks) {
  const { header } = decodeJwt(jwt);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  check(jwk, `kid ${header.kid} of the ID token is not in /jwks`);
  const [h, p, s] = jwt.split('.');
  const valid = crypto.verify('sha256', Buffer.from(`${h}.${p}`), crypto.createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
  check(valid, `ID token signature does not verify with kid ${header.kid}`);
}

// Extract <input> name/value pairs and the action of the form with the given id.
function parseForm(html, id) {
  const m = html.match(new RegExp(`<form[^>]*id="${id}"[^>]*>([\\s\\S]*?)</form>`));
  check(m, `form #${id} not found in page:\n${html.slice(0, 2000)}`);
  const action = m[0].match(/action="([^"]*)"/)[1].replace(/&amp;/g, '&');
  const fields = {};
  for (const input of m[1].matchAll(/<input[^>]*>/g)) {
    const name = input[0].match(/name="([^"]*)"/)?.[1];
    const value = input[0].match(/value="([^"]*)"/)?.[1] ?? '';
    if (name) fields[name] = value;
  }
  return { action, fields };
}

// ---------------------------------------------------------------------------
// Flows

let issuer;
let discovery;

// Authorization code + PKCE login. Follows redirects by hand, fills the login
// form when shown (optionally trying a wrong password first).
async function login(jar, { user, password, scope = 'openid email profile groups', wrongPasswordFirst = false }) {
  const verifier = b64url(crypto.randomBytes(32));
  const state = b64url(crypto.randomBytes(12));
  const nonce = b64url(crypto.randomBytes(12));
  const authUrl = new URL(discovery.authorization_endpoint);
  authUrl.search = new URLSearchParams({
    client_id: CLIENT.client_id,
    response_type: 'code',
    scope,
    redirect_uri: REDIRECT_URI,
    state,
    nonce,
    code_challenge: b64url(crypto.createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  }).toString();

  let res = await request(jar, authUrl.href);
  let formShown = false;
  for (let hops = 0; hops < 10; hops += 1) {
    if (res.status >= 300 && res.status < 400) {
      if (res.location.startsWith(REDIRECT_URI)) break;
      res = await request(jar, res.location);
      continue;
    }
    check(res.status === 200 && res.body.includes('id="login-form"'), `unexpected response ${res.status}:\n${res.body.slice(0, 2000)}`);
    const { action } = parseForm(res.body, 'login-form');
    const actionUrl = new URL(action, issuer).href;
    if (wrongPasswordFirst && !formShown) {
      const bad = await request(jar, actionUrl, { method: 'POST', form: { login: user, password: 'wrong' } });
      check(bad.status === 200 && bad.body.includes('Invalid username or password'), `wrong password should re-render the form with 200, got ${bad.status}`);
      check(bad.body.includes('id="login-form"'), 'wrong password page has no login form');
      ok(`wrong password for ${user} re-renders the form (HTTP 200 + error)`);
      res = bad;
    }
    formShown = true;
    const form = parseForm(res.body, 'login-form');
    res = await request(jar, new URL(form.action, issuer).href, { method: 'POST', form: { login: user, password } });
  }
  check(res.location?.startsWith(REDIRECT_URI), `login did not end at the redirect_uri (last status ${res.status})`);

  const cb = new URL(res.location).searchParams;
  check(!cb.get('error'), `authorization error: ${cb.get('error')} ${cb.get('error_description')}`);
  check(cb.get('state') === state, 'state mismatch in callback');
  check(cb.get('iss') === issuer, 'iss parameter missing or wrong in callback');
  const code = cb.get('code');
  check(code, 'no code in callback');

  const token = await request(null, discovery.token_endpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${CLIENT.client_id}:${CLIENT.client_secret}`).toString('base64')}` },
    form: { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier },
  });
  check(token.status === 200, `token endpoint returned ${token.status}: ${token.body}`);
  const tokens = JSON.parse(token.body);
  check(tokens.id_token, 'no id_token in token response');
  const { header, payload } = decodeJwt(tokens.id_token);
  check(payload.nonce === nonce, 'nonce mismatch in ID token');
  check(payload.iss === issuer, 'iss mismatch in ID token');
  check(payload.aud === CLIENT.client_id, 'aud mismatch in ID token');
  return { tokens, header, claims: payload, formShown };
}

async function getJwks() {
  const res = await request(null, discovery.jwks_uri);
  check(res.status === 200, `/jwks returned ${res.status}`);
  return JSON.parse(res.body);
}

async function main() {
  ({ issuer } = await startServer());
  check(/^http:\/\/127\.0\.0\.1:\d+$/.test(issuer), `unexpected issuer ${issuer}`);
  ok(`server ready at ${issuer}`);

  discovery = JSON.parse((await request(null, `${issuer}/.well-known/openid-configuration`)).body);
  check(discovery.issuer === issuer, 'discovery issuer mismatch');
  check(discovery.end_session_endpoint, 'no end_session_endpoint in discovery');

  // PKCE is mandatory.
  const noPkce = await request(new CookieJar(), `${discovery.authorization_endpoint}?${new URLSearchParams({
    client_id: CLIENT.client_id, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT_URI, state: 's',
  })}`);
  check(noPkce.location && new URL(noPkce.location).searchParams.get('error') === 'invalid_request',
    `authorization request without PKCE should fail with invalid_request (got ${noPkce.status} ${noPkce.location})`);
  ok('authorization request without PKCE is rejected');

  // Cancel on the login page ends with error=access_denied at the client.
  {
    const jar = new CookieJar();
    const start = await request(jar, `${discovery.authorization_endpoint}?${new URLSearchParams({
      client_id: CLIENT.client_id, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT_URI, state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`);
    const loginPage = await request(jar, start.location);
    const abort = parseForm(loginPage.body, 'abort-form');
    let res = await request(jar, new URL(abort.action, issuer).href, { method: 'POST', form: {} });
    res = await request(jar, res.location);
    check(res.location?.startsWith(REDIRECT_URI) && new URL(res.location).searchParams.get('error') === 'access_denied',
      `cancel should end with error=access_denied at the redirect_uri (got ${res.status} ${res.location})`);
    ok('cancel on the login page returns error=access_denied');
  }

  // Alice: full login through the HTML form.
  const aliceJar = new CookieJar();
  const first = await login(aliceJar, { user: 'alice', password: 'alice-pw', wrongPasswordFirst: true });
  const c = first.claims;
  check(first.formShown, 'login form was not shown for a fresh session');
  check(c.sub === 'alice', `sub is ${c.sub}`);
  check(c.preferred_username === 'alice', `preferred_username is ${c.preferred_username}`);
  check(c.email === 'alice@example.com' && c.email_verified === true, `email claims are ${c.email}/${c.email_verified}`);
  check(c.name === 'Alice Example', `name is ${c.name}`);
  check(isDeepStrictEqual(c.groups, ['admins', 'staff']), `groups are ${JSON.stringify(c.groups)}`);
  let jwks = await getJwks();
  verifyJwt(first.tokens.id_token, jwks);
  ok(`alice logged in; ID token (kid ${first.header.kid}) has sub, preferred_username, email, name, groups and verifies`);

  const userinfo = await request(null, discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${first.tokens.access_token}` } });
  check(userinfo.status === 200 && isDeepStrictEqual(JSON.parse(userinfo.body).groups, ['admins', 'staff']), `userinfo failed: ${userinfo.status} ${userinfo.body}`);
  ok('userinfo returns the same claims');

  const priv = JSON.parse((await request(null, `${issuer}/__test/jwks-private`)).body);
  check(priv.keys.some((k) => k.kid === first.header.kid && k.d), '/__test/jwks-private lacks the private signing key');
  ok('/__test/jwks-private returns the private signing key');

  // Key rotation.
  const rot = await request(null, `${issuer}/__test/rotate-keys`, { method: 'POST' });
  check(rot.status === 200, `rotate-keys returned ${rot.status}`);
  const newKid = JSON.parse(rot.body).kid;
  check(newKid && newKid !== first.header.kid, 'rotate-keys did not report a new kid');
  jwks = await getJwks();
  check(jwks.keys.some((k) => k.kid === newKid), 'new kid not published in /jwks');
  check(!jwks.keys.some((k) => k.kid === first.header.kid), 'old kid still published in /jwks');
  ok(`rotated keys: /jwks now publishes ${newKid} only`);

  // Second login as alice: the IdP session survives the rotation (no form),
  // and the new ID token is signed with the new key.
  const second = await login(aliceJar, { user: 'alice', password: 'alice-pw' });
  check(!second.formShown, 'session did not survive key rotation (login form shown again)');
  check(second.header.kid === newKid, `second ID token kid ${second.header.kid} != rotated kid ${newKid}`);
  verifyJwt(second.tokens.id_token, jwks);
  ok(`second login (SSO, no form) got an ID token with the new kid ${newKid}, present in /jwks`);

  // Bob asks only for "openid email profile": groups still released via profile.
  const bob = await login(new CookieJar(), { user: 'bob', password: 'bob-pw', scope: 'openid email profile' });
  check(bob.claims.sub === 'bob' && isDeepStrictEqual(bob.claims.groups, ['staff']), `bob groups are ${JSON.stringify(bob.claims.groups)}`);
  ok('bob with scope "openid email profile" gets groups ["staff"]');

  // RP-initiated logout: non-JS clients POST the confirmation form as is.
  const endUrl = `${discovery.end_session_endpoint}?${new URLSearchParams({
    id_token_hint: second.tokens.id_token,
    post_logout_redirect_uri: CLIENT.post_logout_redirect_uris[0],
    state: 'bye',
  })}`;
  const endPage = await request(aliceJar, endUrl);
  check(endPage.status === 200, `end_session returned ${endPage.status}: ${endPage.body.slice(0, 500)}`);
  const logoutForm = parseForm(endPage.body, 'op.logoutForm');
  const done = await request(aliceJar, logoutForm.action, { method: 'POST', form: logoutForm.fields });
  check(done.location === `${CLIENT.post_logout_redirect_uris[0]}?state=bye`, `logout ended at ${done.status} ${done.location}`);
  const third = await login(aliceJar, { user: 'alice', password: 'alice-pw' });
  check(third.formShown, 'login form not shown after logout');
  ok('RP-initiated logout redirects to post_logout_redirect_uri and ends the IdP session');
}

try {
  await main();
  console.log('selftest: PASS');
  process.exitCode = 0;
} catch (err) {
  console.error(`selftest: FAIL: ${err instanceof CheckFailed ? err.message : err.stack}`);
  if (childStderr) console.error(`--- server stderr ---\n${childStderr}`);
  process.exitCode = 1;
} finally {
  child?.removeAllListeners('exit');
  child?.kill('SIGTERM');
}
