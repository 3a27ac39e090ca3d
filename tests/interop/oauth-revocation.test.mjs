// deprov revokes, at a real OpenID Provider, the OAuth grants an application registered
// with it (RFC 7009), when the user is de-provisioned over SCIM.
//
// node `oidc-provider` is the OP on 127.0.0.1, with revocation, introspection, client
// credentials, devInteractions and refresh tokens for `offline_access`; its `fetch` is
// overridden so that it may reach loopback. The "application" is this test: it logs users
// in through the real authorization-code flow (PKCE, devInteractions' login and consent),
// obtains refresh tokens and client-credentials access tokens (opaque, and one JWT-format
// for a resource server), and registers them at deprov's grants API authenticated as its
// client (HTTP Basic with the secret `deprov op add` issued).
//
// Then, over SCIM in Entra's dialect:
// 1. alice is deactivated → deprov revokes her refresh token and the opaque access token
//    (the OP's token endpoint then answers `invalid_grant`, its introspection
//    `active: false`), and the JWT access token is refused by the OP with
//    `unsupported_token_type`: a dead delivery, visible in `deprov deliveries list`.
// 2. the OP is stopped; bob is deactivated; deprov's attempts fail and are retried; after
//    20 s the OP is restarted on the same port with the same state → the revocation is
//    retried and done, and bob's refresh token is dead.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomBytes, createHash } from 'node:crypto';
import Provider from 'oidc-provider';
import { startDeprov, freePort, describe, oktaUser, ENTRA_DEACTIVATE, sleep, waitFor } from './lib/deprov.mjs';
import { Browser, parseForm } from './lib/browser.mjs';

const CLIENT_ID = 'revoking-app';
const CLIENT_SECRET = `s3cret:${randomBytes(18).toString('base64url')}+/`; // needs RFC 6749 §2.3.1 encoding
const RESOURCE = 'urn:example:api';

let d;
let op; // { issuer, port, provider, server, start(), stop() }
let grantsSecret;
let redirectUri;

before(async () => {
  // Debug logging, so that the log check below covers every line deprov may write.
  d = await startDeprov({ name: 'oauth-revocation', env: { DEPROV_LOG_LEVEL: 'debug' } });
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  redirectUri = `http://127.0.0.1:${await freePort()}/callback`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid offline_access api:read',
    }],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        // Only this resource server gets JWT access tokens (which RFC 7009 cannot revoke at
        // oidc-provider); everything else stays opaque.
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== RESOURCE) throw new Error(`unknown resource ${resource}`);
          return { scope: 'api:read', audience: RESOURCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    scopes: ['openid', 'offline_access', 'api:read'],
    issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    // Since 9.7 oidc-provider's outbound fetch refuses loopback; this test's peers live there.
    fetch: (url, options) => globalThis.fetch(url, options),
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 3600, IdToken: 600, RefreshToken: 86400, ClientCredentials: 3600 },
    findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error', err));
  op = {
    issuer, port, provider, server: undefined,
    async start() {
      this.server = createServer(provider.callback());
      await new Promise((ok, fail) => { this.server.once('error', fail); this.server.listen(port, '127.0.0.1', ok); });
    },
    async stop() {
      const s = this.server;
      this.server = undefined;
      if (s) await new Promise((ok) => { s.closeAllConnections(); s.close(() => ok()); });
    },
  };
  await op.start();

  // The application's client at the OP, registered in deprov; users named by login.
  const added = await d.cli('op', 'add', '--tenant', 'default', '--kind', 'oauth_revocation',
    '--client-id', CLIENT_ID, '--issuer', issuer, '--subject', 'userName',
    '--client-secret-file', await secretFile(CLIENT_SECRET));
  assert.equal(added.config.client_secret, '[sealed]', JSON.stringify(added));
  assert.ok(!JSON.stringify(added).includes(CLIENT_SECRET));
  grantsSecret = added.grants_api_secret;
  assert.match(grantsSecret ?? '', /^deprov_grants_/, JSON.stringify(added));
  assert.equal(added.grants_endpoint, `${d.url}/api/v1/default/grants`);
});

after(async () => {
  await op?.stop();
  await d?.stop();
});

async function secretFile(secret) {
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const path = join(d.dir, `secret-${randomBytes(4).toString('hex')}`);
  writeFileSync(path, secret, { mode: 0o600 });
  return path;
}

const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** A request to one of the OP's endpoints as the client, form-encoded. */
async function opPost(path, form) {
  const res = await fetch(`${op.issuer}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(CLIENT_ID, CLIENT_SECRET) },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

/** The real authorization-code flow with PKCE and offline_access; returns the token response. */
async function login(user) {
  const browser = new Browser();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const auth = new URL(`${op.issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: CLIENT_ID, response_type: 'code', redirect_uri: redirectUri,
    scope: 'openid offline_access', prompt: 'consent', state: randomBytes(8).toString('hex'),
    code_challenge: challenge, code_challenge_method: 'S256',
  }).toString();
  let page = await browser.navigate(auth.href, {}, redirectUri);
  for (let forms = 0; !page.redirectedTo; forms += 1) {
    assert.ok(forms < 4, `stuck in the OP's interactions:\n${browser.trace.join('\n')}\n${page.text.slice(0, 1500)}`);
    assert.equal(page.status, 200, `${page.url}: ${page.text.slice(0, 1500)}\n${browser.trace.join('\n')}`);
    const { action, fields } = parseForm(page);
    if ('login' in fields) Object.assign(fields, { login: user, password: 'any' });
    page = await browser.navigate(action, { method: 'POST', form: fields }, redirectUri);
  }
  const code = new URL(page.redirectedTo).searchParams.get('code');
  assert.ok(code, `no code in ${page.redirectedTo}\n${browser.trace.join('\n')}`);
  const tokens = await opPost('/token', { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier });
  assert.equal(tokens.status, 200, tokens.text);
  assert.ok(tokens.json.refresh_token, `no refresh token for offline_access: ${tokens.text}`);
  return tokens.json;
}

/** Registers a grant at deprov as the application. */
async function register(token, hint, sub) {
  const res = await fetch(`${d.url}/api/v1/default/grants`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(CLIENT_ID, grantsSecret) },
    body: new URLSearchParams({ token, token_type_hint: hint, sub }).toString(),
  });
  const text = await res.text();
  assert.equal(res.status, 201, `registering a ${hint}: ${res.status} ${text}`);
  assert.ok(!text.includes(token), 'the grants API returned the token');
  return JSON.parse(text);
}

async function provisionUser(userName) {
  const created = await d.scim('POST', '/Users', oktaUser({ userName, externalId: `00u-${userName}` }));
  assert.equal(created.status, 201, describe(created));
  return created.json.id;
}

async function deactivate(userId) {
  const res = await d.scim('PATCH', `/Users/${userId}`, ENTRA_DEACTIVATE);
  assert.ok(res.status === 200 || res.status === 204, describe(res));
  return waitFor(`a deactivated event for ${userId}`, () => d.findEvent({ userId, kind: 'deactivated' }));
}

/** Every token this test obtained: none may ever appear in deprov's log. */
const issued = [];

const isRefreshable = async (rt) => (await opPost('/token', { grant_type: 'refresh_token', refresh_token: rt }));
const introspect = async (token) => (await opPost('/token/introspection', { token })).json;

test('deactivating alice revokes her refresh token and opaque access token at oidc-provider; the JWT one is refused, visibly', async () => {
  const alice = 'alice@example.com';
  const userId = await provisionUser(alice);
  const tokens = await login(alice);
  // The refresh token works before (and rotates: keep the newest).
  const refreshed = await isRefreshable(tokens.refresh_token);
  assert.equal(refreshed.status, 200, refreshed.text);
  const rt = refreshed.json.refresh_token ?? tokens.refresh_token;
  const cc = await opPost('/token', { grant_type: 'client_credentials' });
  assert.equal(cc.status, 200, cc.text);
  const opaque = cc.json.access_token;
  assert.equal(opaque.split('.').length, 1, `expected an opaque token: ${opaque}`);
  assert.equal((await introspect(opaque)).active, true);
  const jwtRes = await opPost('/token', { grant_type: 'client_credentials', resource: RESOURCE, scope: 'api:read' });
  assert.equal(jwtRes.status, 200, jwtRes.text);
  const jwt = jwtRes.json.access_token;
  assert.equal(jwt.split('.').length, 3, `expected a JWT: ${jwt}`);

  issued.push(rt, opaque, jwt, CLIENT_SECRET, grantsSecret);
  await register(rt, 'refresh_token', alice);
  await register(opaque, 'access_token', alice);
  await register(jwt, 'access_token', alice);
  const held = await d.cli('op', 'grants', '--tenant', 'default', CLIENT_ID);
  assert.equal(held.length, 3, JSON.stringify(held));
  for (const token of [rt, opaque, jwt]) assert.ok(!JSON.stringify(held).includes(token));

  const event = await deactivate(userId);
  const trail = await d.waitSettled(event.id, { timeoutMs: 20_000 });
  const delivery = trail.deliveries.find((x) => x.target_kind === 'oauth_revocation');
  assert.ok(delivery, JSON.stringify(trail, null, 2));

  // The OP no longer honours the refresh token nor the opaque access token.
  const after = await isRefreshable(rt);
  assert.equal(after.status, 400, after.text);
  assert.equal(after.json.error, 'invalid_grant', after.text);
  assert.equal((await introspect(opaque)).active, false);

  // The JWT access token cannot be revoked by RFC 7009 at oidc-provider: permanent,
  // recorded, visible; it is the only grant deprov still holds.
  assert.equal(delivery.status, 'dead', JSON.stringify(delivery, null, 2));
  assert.match(delivery.last_error ?? '', /HTTP 400.*unsupported_token_type/s, JSON.stringify(delivery, null, 2));
  const dead = await d.cli('deliveries', 'list', '--status', 'dead');
  const listed = dead.deliveries.find((x) => x.id === delivery.id);
  assert.ok(listed, JSON.stringify(dead, null, 2));
  assert.match(listed.last_error, /unsupported_token_type/);
  const left = await d.cli('op', 'grants', '--tenant', 'default', CLIENT_ID);
  assert.equal(left.length, 1, JSON.stringify(left));
  assert.match(left[0].last_error ?? '', /unsupported_token_type/);
  for (const token of [rt, opaque, jwt]) {
    assert.ok(!JSON.stringify(trail).includes(token), 'a token reached the trail');
  }
});

test('with the OP stopped for 20 s, bob\'s revocation is retried and done once it is back', async () => {
  const bob = 'bob@example.com';
  const userId = await provisionUser(bob);
  const tokens = await login(bob);
  issued.push(tokens.refresh_token);
  await register(tokens.refresh_token, 'refresh_token', bob);

  await op.stop();
  const stoppedAt = Date.now();
  const event = await deactivate(userId);
  // deprov tries, fails (connection refused), and schedules a retry.
  await waitFor('a failed attempt while the OP is down', async () => {
    const t = await d.eventTrail(event.id);
    const x = t.deliveries.find((y) => y.target_kind === 'oauth_revocation');
    return x && x.attempts.length > 0 && x.status === 'retrying' ? x : false;
  }, { timeoutMs: 10_000 });
  await sleep(Math.max(0, 20_000 - (Date.now() - stoppedAt)));
  await op.start(); // same port, same provider: same in-memory state

  const trail = await d.waitSettled(event.id, { timeoutMs: 45_000, intervalMs: 500 });
  const x = trail.deliveries.find((y) => y.target_kind === 'oauth_revocation');
  assert.equal(x.status, 'delivered', JSON.stringify(x, null, 2));
  assert.ok(x.attempts.length >= 2, JSON.stringify(x.attempts, null, 2));
  assert.equal(x.attempts[0].http_status ?? null, null, 'the first attempt had no answer');
  assert.equal(x.attempts.at(-1).http_status, 200, JSON.stringify(x.attempts, null, 2));
  const after = await isRefreshable(tokens.refresh_token);
  assert.equal(after.status, 400, after.text);
  assert.equal(after.json.error, 'invalid_grant', after.text);
  const left = await d.cli('op', 'grants', '--tenant', 'default', CLIENT_ID);
  assert.ok(!left.some((g) => g.sub === bob), JSON.stringify(left));
});

test('no token or secret ever reached deprov\'s log', async () => {
  const { readFileSync } = await import('node:fs');
  const log = readFileSync(d.logPath, 'utf8');
  assert.ok(log.includes('grant registered'), 'the log is not the one deprov wrote');
  for (const secret of issued) {
    assert.ok(!log.includes(secret), `a token or secret is in ${d.logPath}`);
  }
});
