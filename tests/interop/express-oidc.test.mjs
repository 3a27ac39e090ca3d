// A real relying party ends a real session on deprov's logout token.
//
// deprov is not the OP the application logs in with, so it signs for that OP: node
// `oidc-provider` (a certified OP) is the login OP, with an RSA key made here in its JWKS;
// the same key is imported into deprov (`deprov keys import`) and the application is
// registered in deprov with `--issuer <the OP> --kid <that key>`. The application is an
// express app with `express-openid-connect` and `backchannelLogout: true`, which validates
// logout tokens against the OP's discovery document and JWKS.
//
// A "browser" (fetch with a cookie jar and manual redirects) logs alice in through the
// authorization-code flow and devInteractions' login and consent forms; /profile answers
// 200. alice is then deactivated over SCIM (Entra dialect); once deprov's trail says the
// logout was delivered, the same browser session is sent back to log in.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import express from 'express';
import eoc from 'express-openid-connect';
import Provider from 'oidc-provider';
import * as jose from 'jose';
import { startDeprov, freePort, describe, oktaUser, ENTRA_DEACTIVATE } from './lib/deprov.mjs';
import { Browser, parseForm } from './lib/browser.mjs';

const { auth, requiresAuth } = eoc;

const LOGIN = 'alice@example.com'; // the account id typed into devInteractions = the ID token's sub
const CLIENT_ID = 'express-app';
const CLIENT_SECRET = randomBytes(24).toString('base64url');

let d;
let op; // { issuer, server, provider }
let app; // { base, server, logoutTokens }
let kid;
let tmp;

/** A session store (express-session shaped) that also holds back-channel logout markers. */
class MemoryStore {
  constructor() { this.data = new Map(); }
  async get(key) { return this.data.get(key); }
  async set(key, value) { this.data.set(key, value); }
  async destroy(key) { this.data.delete(key); }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'deprov-express-'));
  d = await startDeprov({ name: 'express' });

  // The OP's signing key: made here, imported into deprov, published by the OP.
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const pemPath = join(tmp, 'op-signing-key.pem');
  writeFileSync(pemPath, await jose.exportPKCS8(privateKey), { mode: 0o600 });
  const imported = await d.cli('keys', 'import', '--pem', pemPath, '--alg', 'RS256');
  kid = imported.kid;
  assert.ok(kid, `deprov keys import printed no kid: ${JSON.stringify(imported)}`);
  const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };

  const opPort = await freePort();
  const appPort = await freePort();
  const issuer = `http://127.0.0.1:${opPort}`;
  const appBase = `http://127.0.0.1:${appPort}`;

  // The login OP.
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [`${appBase}/callback`],
      post_logout_redirect_uris: [appBase],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [privateJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: { devInteractions: { enabled: true } },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
    findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error', err));
  const opServer = createServer(provider.callback());
  await new Promise((ok) => opServer.listen(opPort, '127.0.0.1', ok));
  op = { issuer, server: opServer, provider };

  // The relying party.
  const store = new MemoryStore();
  const logoutTokens = [];
  const web = express();
  // Watch (without touching) what reaches the back-channel logout route, and the answer.
  web.use('/backchannel-logout', (req, res, next) => {
    const seen = { at: Date.now() };
    logoutTokens.push(seen);
    res.on('finish', () => { seen.status = res.statusCode; });
    next();
  });
  web.use(auth({
    issuerBaseURL: issuer,
    baseURL: appBase,
    clientID: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    secret: randomBytes(32).toString('base64url'),
    authRequired: false,
    idpLogout: false,
    backchannelLogout: true,
    session: { store },
    authorizationParams: { response_type: 'code', scope: 'openid' },
  }));
  web.get('/', (req, res) => res.send(req.oidc.isAuthenticated() ? 'logged in' : 'logged out'));
  web.get('/profile', requiresAuth(), (req, res) => res.json({ sub: req.oidc.user.sub, claims: req.oidc.idTokenClaims }));
  web.use((err, req, res, next) => { // eslint-disable-line no-unused-vars
    res.status(err.status ?? 500).json({ error: err.message, error_description: err.error_description });
  });
  const appServer = createServer(web);
  await new Promise((ok) => appServer.listen(appPort, '127.0.0.1', ok));
  app = { base: appBase, server: appServer, logoutTokens, store };
});

after(async () => {
  for (const s of [app?.server, op?.server]) {
    if (s) await new Promise((ok) => { s.closeAllConnections(); s.close(() => ok()); });
  }
  await d?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const browser = new Browser();

test('alice logs in to the express app through oidc-provider (authorization code flow)', async () => {
  let page = await browser.navigate(`${app.base}/login`);
  // devInteractions: the login form, then the consent form; each submit returns to the OP.
  for (let forms = 0; page.url.startsWith(op.issuer); forms += 1) {
    assert.ok(forms < 4, `stuck in the OP's interactions:\n${browser.trace.join('\n')}\n${page.text.slice(0, 1500)}`);
    assert.equal(page.status, 200, `${page.url}: ${page.text.slice(0, 1500)}\n${browser.trace.join('\n')}`);
    const { action, fields } = parseForm(page);
    if ('login' in fields) Object.assign(fields, { login: LOGIN, password: 'any' });
    page = await browser.navigate(action, { method: 'POST', form: fields });
  }
  assert.equal(page.url, `${app.base}/`, browser.trace.join('\n'));
  assert.equal(page.text, 'logged in', `${page.status} ${page.text}\n${browser.trace.join('\n')}`);
  const profile = await browser.request(`${app.base}/profile`);
  assert.equal(profile.status, 200, `${profile.status} ${profile.text}`);
  const body = JSON.parse(profile.text);
  assert.equal(body.sub, LOGIN);
  assert.equal(body.claims.iss, op.issuer);
});

test('deactivating alice over SCIM ends her express session via deprov\'s logout token', async (t) => {
  const pre = await browser.request(`${app.base}/profile`);
  if (pre.status !== 200) return t.skip('alice is not logged in (see the previous test)');

  await d.cli('rp', 'add', '--tenant', 'default', '--client-id', CLIENT_ID,
    '--backchannel-logout-uri', `${app.base}/backchannel-logout`,
    '--issuer', op.issuer, '--kid', kid, '--subject', 'userName', '--alg', 'RS256');

  const created = await d.scim('POST', '/Users', oktaUser({ userName: LOGIN, externalId: '00u-alice' }));
  assert.equal(created.status, 201, describe(created));
  const still = await browser.request(`${app.base}/profile`);
  assert.equal(still.status, 200, 'provisioning alone must not log anyone out');

  const res = await d.scim('PATCH', `/Users/${created.json.id}`, ENTRA_DEACTIVATE);
  assert.ok(res.status === 200 || res.status === 204, describe(res));
  const event = await d.findEvent({ userId: created.json.id, kind: 'deactivated' });
  assert.ok(event, `no deactivated event for ${created.json.id}`);
  const trail = await d.waitSettled(event.id, { timeoutMs: 20_000 });
  assert.equal(trail.deliveries.length, 1, JSON.stringify(trail.deliveries, null, 2));
  const x = trail.deliveries[0];
  assert.equal(x.status, 'delivered',
    `express-openid-connect did not accept deprov's logout token: ${JSON.stringify(x, null, 2)}\n`
    + `(its answers: ${JSON.stringify(app.logoutTokens)})`);
  // express-openid-connect answers 204 on success (Back-Channel Logout 1.0 §2.8 allows it).
  assert.equal(x.attempts.at(-1).http_status, 204, JSON.stringify(x.attempts));
  assert.equal(x.attempt_count, 1, JSON.stringify(x, null, 2));
  assert.deepEqual(app.logoutTokens.map((l) => l.status), [204]);
  assert.ok(app.store.data.has(`${op.issuer}|${LOGIN}`),
    `no logout marker for ${op.issuer}|${LOGIN}: ${[...app.store.data.keys()].join(', ')}`);

  // The same browser session is now logged out: /profile sends it to log in at the OP.
  const after = await browser.request(`${app.base}/profile`);
  assert.equal(after.status, 302, `/profile after the logout: ${after.status} ${after.text}`);
  assert.ok(after.location?.startsWith(`${op.issuer}/auth`), `redirected to ${after.location}`);
  const home = await browser.request(`${app.base}/`);
  assert.equal(home.text, 'logged out');
});
