// deprov → strict back-channel logout receivers, end to end: a real `deprov serve`, users
// provisioned and de-provisioned over SCIM in the Entra and Okta dialects, and relying
// parties on 127.0.0.1 that verify every logout token with `jose` against deprov's
// discovery document (lib/bcl-receiver.mjs), then with joserfc for a second opinion.
// deprov's own trail (`deprov events show`, `deprov deliveries list`) must agree.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  startDeprov, waitFor, describe, oktaUser,
  ENTRA_DEACTIVATE, OKTA_DEACTIVATE, OKTA_REACTIVATE, REPO,
} from './lib/deprov.mjs';
import { startReceiver } from './lib/bcl-receiver.mjs';

const execFileP = promisify(execFile);

let d;
let rx;
const rps = {
  // name: client_id, alg, --subject, and how to compute the expected sub from the SCIM user.
  rs256: { clientId: 'app-rs256', alg: 'RS256', subject: 'userName', sub: (u) => u.userName },
  es256: { clientId: 'app-es256', alg: 'ES256', subject: 'externalId', sub: (u) => u.externalId },
  eddsa: { clientId: 'app-eddsa', alg: 'EdDSA', subject: 'id', sub: (u) => u.id },
};
const flaky = { clientId: 'app-flaky', alg: 'RS256', subject: 'userName' };
const reject = { clientId: 'app-reject', alg: 'RS256', subject: 'userName' };
const REJECT_BODY = '{"error":"invalid_request","error_description":"unknown user erin-4711"}';

before(async () => {
  d = await startDeprov({ name: 'bcl' });
  rx = await startReceiver({ discoveryUrl: `${d.url}/.well-known/openid-configuration` });
  for (const [name, rp] of Object.entries(rps)) {
    const uri = rx.addRp(name, rp);
    rp.registered = await d.cli('rp', 'add', '--tenant', 'default', '--client-id', rp.clientId,
      '--backchannel-logout-uri', uri, '--alg', rp.alg, '--subject', rp.subject);
  }
});

after(async () => {
  await rx?.close();
  await d?.stop();
});

/** Fails with the receiver's findings if any request broke a rule. */
function assertNoViolations() {
  const v = rx.violations();
  assert.deepEqual(v, [], `the strict receiver rejected deprov's requests:\n${JSON.stringify(v, null, 2)}`);
}

async function createUser(user, tenant) {
  const res = await d.scim('POST', '/Users', user, { tenant });
  assert.equal(res.status, 201, describe(res));
  assert.ok(res.json?.id, `no id in ${describe(res)}`);
  return res.json;
}

async function patchUser(id, body, tenant) {
  const res = await d.scim('PATCH', `/Users/${id}`, body, { tenant });
  assert.ok(res.status === 200 || res.status === 204, describe(res));
  return res;
}

/** The event of `kind` for `userId` (waiting briefly: it is committed with the SCIM change). */
function eventFor(userId, kind, { tenant, notIn = [] } = {}) {
  return waitFor(`a ${kind} event for user ${userId}`,
    () => d.findEvent({ userId, kind, tenant, notIn }), { timeoutMs: 5_000 });
}

/**
 * Asserts that the three default-tenant relying parties each got exactly one more valid
 * token, for `user`, since `before` (counts per relying party), and that deprov's trail
 * for `eventId` says each was delivered at the first attempt.
 */
async function assertDeliveredToAllThree(eventId, user, before) {
  const trail = await d.waitSettled(eventId, { timeoutMs: 20_000 });
  const byClient = Object.fromEntries(trail.deliveries.map((x) => [x.client_id, x]));
  assert.deepEqual(Object.keys(byClient).sort(), Object.values(rps).map((r) => r.clientId).sort(),
    `deliveries of event ${eventId}: ${JSON.stringify(trail.deliveries, null, 2)}`);
  for (const rp of Object.values(rps)) {
    const x = byClient[rp.clientId];
    assert.equal(x.status, 'delivered', `delivery to ${rp.clientId}: ${JSON.stringify(x, null, 2)}`);
    assert.equal(x.target_kind, 'backchannel_logout', JSON.stringify(x));
    assert.equal(x.attempt_count, 1, `delivery to ${rp.clientId}: ${JSON.stringify(x, null, 2)}`);
    assert.equal(x.attempts.length, 1, JSON.stringify(x.attempts));
    assert.equal(x.attempts[0].http_status, 200, JSON.stringify(x.attempts));
    assert.ok(x.completed_at, `delivered without completed_at: ${JSON.stringify(x)}`);
  }
  assertNoViolations();
  for (const [name, rp] of Object.entries(rps)) {
    const got = rx.of(name).slice(before[name]);
    assert.equal(got.length, 1, `${name} got ${got.length} requests for event ${eventId}: ${JSON.stringify(got.map((g) => g.claims))}`);
    assert.equal(got[0].claims.sub, rp.sub(user), `${name}: sub mapped by --subject ${rp.subject}`);
    assert.equal(got[0].claims.aud, rp.clientId);
    assert.equal(got[0].header.alg, rp.alg);
    assert.equal(got[0].claims.iss, d.url);
  }
}

const counts = () => Object.fromEntries(Object.keys(rps).map((n) => [n, rx.of(n).length]));

test('discovery names deprov as the issuer and publishes its keys', async () => {
  const res = await fetch(`${d.url}/.well-known/openid-configuration`);
  assert.equal(res.status, 200);
  const doc = await res.json();
  // OpenID Connect Discovery 1.0 §4.3: issuer identical to the URL the document was fetched under.
  assert.equal(doc.issuer, d.url, JSON.stringify(doc));
  assert.equal(typeof doc.jwks_uri, 'string', JSON.stringify(doc));
  assert.equal(doc.backchannel_logout_supported, true, JSON.stringify(doc));
  const jwks = await (await fetch(doc.jwks_uri)).json();
  assert.ok(Array.isArray(jwks.keys), JSON.stringify(jwks));
  for (const k of jwks.keys) {
    assert.ok(k.kid, `a JWK without kid: ${JSON.stringify(k)}`);
    assert.equal(k.d, undefined, `private material in the JWKS: kid ${k.kid}`);
  }
});

let alice;

test('Entra deactivation (Replace active "False") logs alice out at RS256, ES256 and EdDSA relying parties', async () => {
  alice = await createUser(oktaUser({ userName: 'alice@example.com', externalId: '00u-alice' }));
  const before = counts();
  const res = await patchUser(alice.id, ENTRA_DEACTIVATE);
  if (res.status === 200) assert.equal(res.json.active, false, describe(res));
  const event = await eventFor(alice.id, 'deactivated');
  await assertDeliveredToAllThree(event.id, alice, before);
  alice.deactivation = event.id;
});

test('Okta re-activation sends nothing; Okta deactivation (path-less replace) logs alice out again', async (t) => {
  if (!alice) return t.skip('needs the Entra test');
  const before = counts();
  const re = await patchUser(alice.id, OKTA_REACTIVATE);
  if (re.status === 200) assert.equal(re.json.active, true, describe(re));
  const events = (await d.cli('events', 'list', '--limit', '200')).filter((e) => e.user_id === alice.id);
  for (const e of events.filter((e) => e.id !== alice.deactivation)) {
    assert.equal(e.deliveries, 0, `re-activation enqueued deliveries: ${JSON.stringify(e)}`);
  }
  const res = await patchUser(alice.id, OKTA_DEACTIVATE);
  if (res.status === 200) assert.equal(res.json.active, false, describe(res));
  const event = await eventFor(alice.id, 'deactivated', { notIn: [alice.deactivation] });
  await assertDeliveredToAllThree(event.id, alice, before);
});

test('DELETE of a user logs them out everywhere', async () => {
  const carol = await createUser(oktaUser({ userName: 'carol@example.com', externalId: '00u-carol' }));
  const before = counts();
  const res = await d.scim('DELETE', `/Users/${carol.id}`);
  assert.equal(res.status, 204, describe(res));
  const event = await eventFor(carol.id, 'deleted');
  await assertDeliveredToAllThree(event.id, carol, before);
});

test('a relying party answering 503, 503, then 200 gets the logout after 3 attempts, each with a fresh token', async (t) => {
  const tenant = await d.createTenant('flaky');
  flaky.uri = rx.addRp('flaky', {
    ...flaky,
    respond: (n) => (n <= 2
      ? { status: 503, body: 'try later', headers: { 'content-type': 'text/plain' } }
      : { status: 200 }),
  });
  await d.cli('rp', 'add', '--tenant', 'flaky', '--client-id', flaky.clientId,
    '--backchannel-logout-uri', flaky.uri, '--alg', flaky.alg, '--subject', flaky.subject);
  const dave = await createUser(oktaUser({ userName: 'dave@example.com', externalId: '00u-dave' }), tenant);
  await patchUser(dave.id, ENTRA_DEACTIVATE, tenant);
  const event = await eventFor(dave.id, 'deactivated', { tenant: 'flaky' });
  const trail = await d.waitSettled(event.id, { timeoutMs: 30_000 });
  assert.equal(trail.deliveries.length, 1, JSON.stringify(trail.deliveries, null, 2));
  const x = trail.deliveries[0];
  assert.equal(x.status, 'delivered', JSON.stringify(x, null, 2));
  assert.equal(x.attempt_count, 3, JSON.stringify(x, null, 2));
  assert.deepEqual(x.attempts.map((a) => a.http_status), [503, 503, 200], JSON.stringify(x.attempts, null, 2));
  const byNo = [...x.attempts].sort((a, b) => a.attempt - b.attempt);
  assert.deepEqual(byNo.map((a) => a.attempt), [1, 2, 3], JSON.stringify(x.attempts));
  t.diagnostic(`attempts at +${byNo.map((a) => a.started_at - byNo[0].started_at).join(' ms, +')} ms`);
  for (let i = 1; i < byNo.length; i += 1) {
    // Backed off, not hammered: exponential backoff starts at about a second (jittered).
    const gap = byNo[i].started_at - byNo[i - 1].started_at;
    assert.ok(gap >= 250, `attempt ${i + 1} came ${gap} ms after attempt ${i}: ${JSON.stringify(byNo)}`);
  }
  assertNoViolations();
  const got = rx.of('flaky');
  assert.equal(got.length, 3, `flaky receiver got ${got.length} requests`);
  assert.equal(new Set(got.map((g) => g.claims.jti)).size, 3, 'a jti was reused across attempts');
  assert.ok(got.every((g) => g.claims.sub === 'dave@example.com'));
  assert.deepEqual(got.map((g) => g.answered), [503, 503, 200]);
});

let dead;

test('a relying party answering 400 with a body dead-letters the delivery, visible with the body excerpt', async () => {
  const tenant = await d.createTenant('reject');
  reject.uri = rx.addRp('reject', {
    ...reject,
    respond: () => ({ status: 400, body: REJECT_BODY, headers: { 'content-type': 'application/json' } }),
  });
  await d.cli('rp', 'add', '--tenant', 'reject', '--client-id', reject.clientId,
    '--backchannel-logout-uri', reject.uri, '--alg', reject.alg, '--subject', reject.subject);
  const erin = await createUser(oktaUser({ userName: 'erin@example.com', externalId: '00u-erin' }), tenant);
  await patchUser(erin.id, ENTRA_DEACTIVATE, tenant);
  const event = await eventFor(erin.id, 'deactivated', { tenant: 'reject' });
  const settled = await d.waitSettled(event.id, { timeoutMs: 20_000 });
  assert.equal(settled.deliveries.length, 1, JSON.stringify(settled.deliveries, null, 2));
  assert.equal(settled.deliveries[0].status, 'dead', JSON.stringify(settled.deliveries[0], null, 2));
  const out = await d.cli('deliveries', 'list', '--status', 'dead', '--tenant', 'reject');
  const listed = out.deliveries.find((x) => x.event_id === event.id);
  assert.ok(listed, `the dead delivery of event ${event.id} is missing from deliveries list --status dead: ${JSON.stringify(out, null, 2)}`);
  dead = { id: listed.id, event: event.id };
  assert.equal(listed.status, 'dead', JSON.stringify(listed));
  assert.equal(listed.attempt_count, 1, `a 400 is permanent: no retry. ${JSON.stringify(listed)}`);
  assertNoViolations();
  assert.equal(rx.of('reject').length, 1);
  // The trail keeps the answer.
  const trail = await d.eventTrail(event.id);
  const x = trail.deliveries.find((y) => y.id === listed.id);
  assert.equal(x.attempts.length, 1, JSON.stringify(x, null, 2));
  assert.equal(x.attempts[0].http_status, 400, JSON.stringify(x.attempts));
  assert.ok(x.attempts[0].response_excerpt?.includes('unknown user erin-4711'),
    `events show lacks the response body: ${JSON.stringify(x.attempts[0])}`);
  // And so does the dead-letter list, where an operator looks first.
  assert.ok(JSON.stringify(listed).includes('unknown user erin-4711'),
    `deprov deliveries list --status dead --json does not show the body excerpt: ${JSON.stringify(listed, null, 2)}`);
});

test('deprov deliveries retry re-drives the dead letter to delivery with a fresh token', async (t) => {
  if (!dead) return t.skip('needs the dead-letter test');
  rx.setResponder('reject', () => ({ status: 200 }));
  const out = await d.cli('deliveries', 'retry', dead.id);
  assert.equal(out.redriven, 1, JSON.stringify(out));
  const x = await waitFor(`delivery ${dead.id} to be delivered after the re-drive`, async () => {
    const trail = await d.eventTrail(dead.event);
    const y = trail.deliveries.find((z) => z.id === dead.id);
    return y.status === 'delivered' ? y : false;
  }, { timeoutMs: 20_000 });
  assert.deepEqual(x.attempts.map((a) => a.http_status), [400, 200], JSON.stringify(x.attempts, null, 2));
  assertNoViolations();
  const got = rx.of('reject');
  assert.equal(got.length, 2);
  assert.notEqual(got[0].claims.jti, got[1].claims.jti);
  const listed = await d.cli('deliveries', 'list', '--status', 'dead', '--tenant', 'reject');
  assert.ok(!listed.deliveries.some((y) => y.id === dead.id), 'still listed as dead after delivery');
});

test('nothing else arrived: no duplicate, stray or pending delivery', async () => {
  assertNoViolations();
  const expected = { rs256: 3, es256: 3, eddsa: 3, flaky: 3, reject: 2 };
  const got = Object.fromEntries(Object.keys(expected).map((n) => [n, rx.of(n).length]));
  // Earlier failures change these counts; this test then repeats their story.
  assert.deepEqual(got, expected, 'requests per relying party over the whole suite');
  for (const status of ['pending', 'retrying']) {
    const out = await d.cli('deliveries', 'list', '--status', status);
    assert.equal(out.deliveries.length, 0, `${status} deliveries left: ${JSON.stringify(out, null, 2)}`);
  }
});

test('joserfc (Python) agrees: every token received verifies against deprov\'s JWKS', async (t) => {
  const valid = rx.received.filter((r) => r.errors.length === 0);
  if (valid.length === 0) return t.skip('no token was received');
  const all = { ...rps, flaky, reject };
  const jwks = await (await fetch(`${d.url}/.well-known/jwks.json`)).json();
  const tmp = mkdtempSync(join(tmpdir(), 'deprov-joserfc-'));
  try {
    const file = join(tmp, 'tokens.json');
    writeFileSync(file, JSON.stringify({
      issuer: d.url,
      jwks,
      tokens: valid.map((r) => ({
        token: r.token, alg: all[r.rp].alg, aud: all[r.rp].clientId, sub: r.claims.sub,
        received_at: Math.floor(r.at / 1000),
      })),
    }));
    const python = join(REPO, 'tests', 'interop', '.venv', 'bin', 'python');
    const script = join(REPO, 'tests', 'interop', 'lib', 'joserfc_check.py');
    let stdout;
    try {
      ({ stdout } = await execFileP(python, [script, file]));
    } catch (e) {
      assert.fail(`joserfc rejected tokens (exit ${e.code}):\n${e.stdout}${e.stderr}`);
    }
    const oks = stdout.split('\n').filter((l) => l.endsWith(': ok'));
    assert.equal(oks.length, valid.length, stdout);
    const algs = new Set(oks.map((l) => l.split(/\s+/)[1]));
    assert.deepEqual([...algs].sort(), ['ES256', 'EdDSA', 'RS256'], stdout);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
