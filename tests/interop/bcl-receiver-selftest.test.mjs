// The strict receiver of bcl.test.mjs must itself be right, or its green means nothing:
// against a stand-in issuer (discovery + JWKS of a key made here) it accepts a correct
// logout token and rejects each single violation of Back-Channel Logout 1.0 / INTEROP.md.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import * as jose from 'jose';
import { validateLogoutRequest, BCL_EVENT } from './lib/bcl-receiver.mjs';

let server;
let issuer;
let key;
let otherKey;
let hsKey;

before(async () => {
  key = await jose.generateKeyPair('RS256', { extractable: true });
  otherKey = await jose.generateKeyPair('RS256', { extractable: true });
  hsKey = new TextEncoder().encode('0123456789abcdef0123456789abcdef');
  const jwk = { ...(await jose.exportJWK(key.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else if (req.url === '/jwks') {
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  issuer = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((ok) => server.close(ok)));

const rp = { clientId: 'client-1', alg: 'RS256' };

function claims(over = {}) {
  const now = Math.floor(Date.now() / 1000);
  const c = {
    iss: issuer, sub: 'alice', aud: 'client-1', iat: now, exp: now + 120,
    jti: randomUUID(), events: { [BCL_EVENT]: {} }, ...over,
  };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
}

async function sign(c, header = {}, signingKey = key.privateKey) {
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(c)))
    .setProtectedHeader({ alg: 'RS256', typ: 'logout+jwt', kid: 'k1', ...header })
    .sign(signingKey);
}

function request(token, over = {}) {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString(),
    ...over,
  };
}

async function check(req, seen = new Set()) {
  return (await validateLogoutRequest(req, rp, { discoveryUrl: `${issuer}/.well-known/openid-configuration` }, seen)).errors;
}

test('a correct logout token is accepted', async () => {
  assert.deepEqual(await check(request(await sign(claims()))), []);
  assert.deepEqual(await check(request(await sign(claims({ sub: undefined, sid: 's1' })))), []);
});

const rejected = {
  'GET instead of POST': [/not POST/, async () => request(await sign(claims()), { method: 'GET' })],
  'a JSON body': [/not application\/x-www-form-urlencoded/, async () => request(await sign(claims()), { headers: { 'content-type': 'application/json' } })],
  'no logout_token field': [/0 logout_token fields/, async () => request('', { body: 'token=x' })],
  'typ JWT': [/typ is "JWT"/, async () => request(await sign(claims(), { typ: 'JWT' }))],
  'no typ': [/typ is undefined/, async () => request(await sign(claims(), { typ: undefined }))],
  'no kid': [/kid is missing/, async () => request(await sign(claims(), { kid: undefined }))],
  'an unknown kid': [/matches 0 keys/, async () => request(await sign(claims(), { kid: 'k2' }))],
  'a signature by another key': [/SIGNATURE_VERIFICATION_FAILED/, async () => request(await sign(claims(), {}, otherKey.privateKey))],
  'alg HS256': [/"HS256" is forbidden/, async () => request(await sign(claims(), { alg: 'HS256' }, hsKey))],
  'alg none': [/"none" is forbidden/, async () => {
    const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    return request(`${enc({ alg: 'none', typ: 'logout+jwt', kid: 'k1' })}.${enc(claims())}.`);
  }],
  'another iss': [/"iss" claim/, async () => request(await sign(claims({ iss: `${issuer}/` })))],
  'another aud': [/"aud" claim/, async () => request(await sign(claims({ aud: 'client-2' })))],
  'no iat': [/missing required "iat"/, async () => request(await sign(claims({ iat: undefined })))],
  'no exp': [/missing required "exp"/, async () => request(await sign(claims({ exp: undefined })))],
  'exp 121 s after iat': [/exp - iat = 121 s/, async () => {
    const now = Math.floor(Date.now() / 1000);
    return request(await sign(claims({ iat: now, exp: now + 121 })));
  }],
  'an expired token': [/ERR_JWT_EXPIRED/, async () => {
    const now = Math.floor(Date.now() / 1000);
    return request(await sign(claims({ iat: now - 200, exp: now - 100 })));
  }],
  'no jti': [/missing required "jti"/, async () => request(await sign(claims({ jti: undefined })))],
  'no events': [/missing required "events"/, async () => request(await sign(claims({ events: undefined })))],
  'the https event URI': [/not exactly/, async () => request(await sign(claims({ events: { 'https://schemas.openid.net/event/backchannel-logout': {} } })))],
  'an extra events member': [/"urn:x"\], not exactly/, async () => request(await sign(claims({ events: { [BCL_EVENT]: {}, 'urn:x': {} } })))],
  'an events value other than {}': [/revoke_offline_access.*not \{\}/, async () => request(await sign(claims({ events: { [BCL_EVENT]: { revoke_offline_access: true } } })))],
  'neither sub nor sid': [/neither sub nor sid/, async () => request(await sign(claims({ sub: undefined })))],
  'a nonce': [/nonce is present/, async () => request(await sign(claims({ nonce: 'n' })))],
};

for (const [name, [reason, make]] of Object.entries(rejected)) {
  test(`rejected: ${name}`, async () => {
    const errors = await check(await make());
    assert.ok(errors.length > 0, `the receiver accepted a token with ${name}`);
    // Rejected for the intended reason, not by accident.
    assert.match(errors.join('\n'), reason);
  });
}

test('rejected: a replayed jti', async () => {
  const seen = new Set();
  const token = await sign(claims());
  assert.deepEqual(await check(request(token), seen), []);
  const errors = await check(request(token), seen);
  assert.match(errors.join('\n'), /seen before/);
});
