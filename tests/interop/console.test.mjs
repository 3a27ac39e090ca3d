// The web console, end to end in a real browser: headless Chromium (Debian's `chromium`,
// driven by playwright-core) against a real `deprov serve`. A relying party that answers
// 400 turns an Entra-style SCIM deactivation into a dead letter; the operator signs in,
// sees the event on the overview, opens its trail, re-drives the dead letter and sees it
// attempted again. A page without a session goes to sign-in, a form without its CSRF
// token is refused with 403 and changes nothing, and sign-out ends the session.
// Screenshots of the overview and of the trail are written for review.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startDeprov, waitFor, describe, ENTRA_DEACTIVATE, REPO } from './lib/deprov.mjs';

const CHROMIUM = process.env.DEPROV_CHROMIUM ?? '/usr/bin/chromium';
const ADMIN_TOKEN = 'console-e2e-admin-token-0123456789abcdefghij';
const REJECT_BODY = '{"error":"invalid_request","error_description":"unknown user"}';
const SHOTS = join(process.env.CARGO_TARGET_DIR ?? join(REPO, 'target'), 'console-screenshots');

let d;
let rp;
let browser;
const received = [];

/** A back-channel logout endpoint that refuses every token with 400 (a permanent failure). */
function startRejectingRp() {
  return new Promise((ok) => {
    const srv = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        received.push({ path: req.url, body });
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(REJECT_BODY);
      });
    });
    srv.listen(0, '127.0.0.1', () => ok(srv));
  });
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run tests/interop/setup.sh (apt-get install chromium)`);
  d = await startDeprov({ name: 'console', env: { DEPROV_ADMIN_TOKEN: ADMIN_TOKEN } });
  rp = await startRejectingRp();
  const uri = `http://127.0.0.1:${rp.address().port}/bcl`;
  await d.cli('rp', 'add', '--tenant', 'default', '--client-id', 'console-app',
    '--backchannel-logout-uri', uri, '--subject', 'userName');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Running as root in CI containers: Chromium's sandbox needs user namespaces.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (rp ? rp.close(r) : r()));
  await d?.stop();
});

/** Provisions a user and deactivates them as Entra ID does; returns the SCIM user. */
async function deactivatedUser(userName) {
  const created = await d.scim('POST', '/Users', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName,
    externalId: `ext-${userName}`,
    active: true,
  });
  assert.equal(created.status, 201, describe(created));
  const patched = await d.scim('PATCH', `/Users/${created.json.id}`, ENTRA_DEACTIVATE);
  assert.ok(patched.status === 200 || patched.status === 204, describe(patched));
  return created.json;
}

async function signIn(page, token = ADMIN_TOKEN) {
  await page.goto(`${d.url}/console/login`);
  await page.fill('#token', token);
  await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
}

test('an operator follows a SCIM deactivation from the overview to its trail and re-drives the dead letter', async (t) => {
  const user = await deactivatedUser('carol.console@example.com');
  const event = await waitFor('the deactivation event', () =>
    d.findEvent({ userId: user.id, kind: 'deactivated' }), { timeoutMs: 5_000 });
  const settled = await d.waitSettled(event.id, { timeoutMs: 20_000 });
  assert.equal(settled.deliveries[0].status, 'dead', JSON.stringify(settled, null, 2));

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();

  // Without a session every page goes to sign-in.
  await page.goto(`${d.url}/console`);
  assert.match(new URL(page.url()).pathname, /^\/console\/login$/);

  // A wrong token is refused without saying why.
  await signIn(page, 'not-the-admin-token-but-long-enough-0123456789');
  assert.match(new URL(page.url()).pathname, /^\/console\/login$/);
  assert.match(await page.textContent('.flash'), /not a valid admin token/);
  await page.screenshot({ path: join(SHOTS, 'sign-in-refused.png') });

  // The right one opens the overview, which shows the dead letter and the event.
  await signIn(page);
  assert.equal(new URL(page.url()).pathname, '/console');
  const cookie = (await context.cookies()).find((c) => c.name === 'deprov_console');
  assert.ok(cookie, 'no session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal((await page.textContent('#dead')).trim(), '1');
  const row = page.locator('table.events tr', { hasText: 'carol.console@example.com' });
  assert.equal(await row.count(), 1, 'the event is not on the overview');
  assert.match(await row.textContent(), /deactivated/);
  assert.match(await page.textContent('#target-health'), /console-app/);
  const overviewShot = join(SHOTS, 'overview.png');
  await page.screenshot({ path: overviewShot, fullPage: true });

  // The trail: the SCIM request, the event, the delivery and its attempt with the 400.
  await Promise.all([page.waitForLoadState('load'), row.locator('a.trail').click()]);
  assert.equal(new URL(page.url()).pathname, `/console/events/${event.id}`);
  const trail = await page.textContent('#trail');
  assert.match(trail, /SCIM request/);
  assert.match(trail, new RegExp(`PATCH /Users/${user.id}`));
  assert.match(trail, /console-app/);
  assert.match(trail, /400/);
  assert.match(trail, /unknown user/);
  assert.equal((await page.textContent('#event-kind')).trim(), 'deactivated');
  const trailShot = join(SHOTS, 'event-trail.png');
  await page.screenshot({ path: trailShot, fullPage: true });
  t.diagnostic(`screenshots: ${overviewShot} ${trailShot}`);
  console.log(`console screenshots written to ${overviewShot} and ${trailShot}`);

  // A form posted without its CSRF token is refused, and nothing is re-driven.
  const forged = await context.request.post(`${d.url}/console/dead-letters/retry-all`, {
    form: { nothing: 'here' }, maxRedirects: 0,
  });
  assert.equal(forged.status(), 403, await forged.text());
  await page.setContent(await forged.text());
  await page.screenshot({ path: join(SHOTS, 'csrf-refused.png') });
  const forgedWrong = await context.request.post(`${d.url}/console/deliveries/${settled.deliveries[0].id}/retry`, {
    form: { csrf: 'f'.repeat(64) }, maxRedirects: 0,
  });
  assert.equal(forgedWrong.status(), 403, await forgedWrong.text());
  const unchanged = await d.eventTrail(event.id);
  assert.equal(unchanged.deliveries[0].status, 'dead');
  assert.equal(unchanged.deliveries[0].attempts.length, 1);

  // Re-drive from the dead letters page: back in the queue, attempted again.
  await page.goto(`${d.url}/console/dead-letters`);
  const dead = page.locator('#dead-letters tr', { hasText: 'console-app' });
  assert.equal(await dead.count(), 1);
  await page.screenshot({ path: join(SHOTS, 'dead-letters.png'), fullPage: true });
  await Promise.all([page.waitForLoadState('load'), dead.locator('button', { hasText: 'Re-drive' }).click()]);
  assert.match(await page.textContent('.flash'), /back in the queue/);
  const again = await waitFor('the re-driven delivery to be attempted again', async () => {
    const tr = await d.eventTrail(event.id);
    return tr.deliveries[0].attempts.length === 2 && tr.deliveries[0].status === 'dead' ? tr : false;
  }, { timeoutMs: 20_000 });
  assert.equal(again.deliveries[0].attempts[1].http_status, 400);
  assert.equal(received.length, 2, 'the receiver should have seen the first attempt and the re-drive');
  // Audited as the admin who signed in, like the same action through the admin API.
  const audit = await (await fetch(`${d.url}/admin/v1/audit?limit=50`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  })).json();
  const actions = audit.items.map((a) => `${a.actor} ${a.action}`);
  assert.ok(actions.includes('admin:DEPROV_ADMIN_TOKEN delivery.redrive'), actions.join('\n'));
  assert.ok(actions.includes('admin:DEPROV_ADMIN_TOKEN console.sign_in'), actions.join('\n'));

  // The trail now shows both attempts.
  await page.goto(`${d.url}/console/events/${event.id}`);
  assert.equal(await page.locator('table.attempts tbody tr').count(), 2);

  // A test logout from the target's page: signed for a synthetic subject, sent once, the
  // answer shown; not a delivery.
  await page.goto(`${d.url}/console/targets`);
  await Promise.all([page.waitForLoadState('load'), page.click('#targets a:has-text("console-app")')]);
  await Promise.all([page.waitForLoadState('load'), page.click('button:has-text("Send a test logout")')]);
  const result = await page.textContent('#test-result');
  assert.match(result, /HTTP 400/);
  assert.match(result, /unknown user/);
  assert.equal(received.length, 3);
  const sent = new URLSearchParams(received[2].body).get('logout_token');
  const claims = JSON.parse(Buffer.from(sent.split('.')[1], 'base64url').toString());
  assert.equal(claims.sub, 'deprov-console-test');
  assert.equal(claims.aud, 'console-app');
  await page.screenshot({ path: join(SHOTS, 'target-test-logout.png'), fullPage: true });
  const trailAfter = await d.eventTrail(event.id);
  assert.equal(trailAfter.deliveries[0].attempts.length, 2, 'the test logout became a delivery attempt');

  // Every other page answers, and is kept for review.
  for (const name of ['events', 'targets', 'tenants', 'tenants/default', 'keys', 'audit']) {
    const res = await page.goto(`${d.url}/console/${name}`);
    assert.equal(res.status(), 200, `/console/${name}`);
    await page.screenshot({ path: join(SHOTS, `${name.replace('/', '-')}.png`), fullPage: true });
  }

  // Sign-out ends the session: the old cookie no longer opens anything.
  await Promise.all([page.waitForLoadState('load'), page.click('header form button')]);
  assert.equal(new URL(page.url()).pathname, '/console/login');
  const replay = await fetch(`${d.url}/console`, {
    headers: { cookie: `deprov_console=${cookie.value}` }, redirect: 'manual',
  });
  assert.equal(replay.status, 303);
  assert.equal(replay.headers.get('location'), '/console/login');

  // A fresh browser without a session is sent to sign-in from a deep link too.
  const anon = await browser.newContext();
  const anonPage = await anon.newPage();
  await anonPage.goto(`${d.url}/console/events/${event.id}`);
  assert.equal(new URL(anonPage.url()).pathname, '/console/login');
  await anon.close();
  await context.close();
});
