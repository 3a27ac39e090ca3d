// A strict OpenID Connect Back-Channel Logout 1.0 (errata 1) receiver: an HTTP server on
// 127.0.0.1 whose paths are relying parties. Every request is checked against every rule of
// §2.4–§2.6 and of INTEROP.md "Back-channel logout", with `jose` (an independent JOSE stack,
// not the one deprov signs with), against the issuer's discovery document and JWKS fetched
// afresh for every request. Requests are recorded with their verdict; the response is the
// relying party's scripted answer when the token is valid, 400 otherwise (§2.8).

import { createServer } from 'node:http';
import * as jose from 'jose';

export const BCL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const MAX_LIFETIME = 120; // s: INTEROP.md "exp … at most ~2 min"; DESIGN.md "at most 120 s"
const CLOCK_TOLERANCE = 5; // s: deprov and this receiver share one clock

function readBody(req) {
  return new Promise((ok, fail) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => ok(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
}

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Validates one back-channel logout request. Returns `{errors, header, claims, token}`; no
 * errors means the request is valid.
 *
 * `rp`: `{clientId, alg}`; `issuer`: `{discoveryUrl}` (the OP whose tokens these are);
 * `seenJti`: a Set shared by every relying party of that issuer.
 */
export async function validateLogoutRequest({ method, headers, body }, rp, issuerConfig, seenJti) {
  const errors = [];
  const out = { errors, header: undefined, claims: undefined, token: undefined };

  // §2.5: "The OP uses an HTTP POST to the registered back-channel logout URI".
  if (method !== 'POST') errors.push(`method is ${method}, not POST (§2.5)`);
  // §2.5: "… using the application/x-www-form-urlencoded format".
  const ct = headers['content-type'];
  const mediaType = ct?.split(';')[0].trim().toLowerCase();
  if (mediaType !== 'application/x-www-form-urlencoded') {
    errors.push(`Content-Type is ${JSON.stringify(ct)}, not application/x-www-form-urlencoded (§2.5)`);
  }
  const params = new URLSearchParams(body);
  const tokens = params.getAll('logout_token');
  if (tokens.length !== 1) {
    errors.push(`body has ${tokens.length} logout_token fields, not exactly one (§2.5): ${JSON.stringify(body.slice(0, 200))}`);
    return out;
  }
  const token = tokens[0];
  out.token = token;

  // Header: typ, alg, kid.
  let header;
  try {
    header = jose.decodeProtectedHeader(token);
  } catch (e) {
    errors.push(`logout_token is not a JWS: ${e.message}`);
    return out;
  }
  out.header = header;
  if (token.split('.').length !== 3) errors.push('logout_token is not a compact JWS (3 parts); encryption was not negotiated');
  if (header.typ !== 'logout+jwt') errors.push(`header typ is ${JSON.stringify(header.typ)}, not "logout+jwt" (§2.4, INTEROP.md)`);
  if (!header.alg || header.alg === 'none' || /^HS/i.test(header.alg)) {
    errors.push(`header alg ${JSON.stringify(header.alg)} is forbidden (none/HMAC, §2.6 step 2)`);
  }
  if (header.alg !== rp.alg) errors.push(`header alg is ${JSON.stringify(header.alg)}, the relying party registered ${rp.alg}`);
  if (typeof header.kid !== 'string' || header.kid === '') errors.push(`header kid is missing (INTEROP.md: typ, kid, alg): ${JSON.stringify(header)}`);
  if (header.crit !== undefined) errors.push(`header carries crit ${JSON.stringify(header.crit)}, which this receiver does not understand`);

  // The issuer's keys, from its discovery document, fetched afresh.
  let discovery;
  let jwks;
  try {
    const dres = await fetch(issuerConfig.discoveryUrl);
    if (dres.status !== 200) throw new Error(`${issuerConfig.discoveryUrl} answered ${dres.status}`);
    discovery = await dres.json();
    if (typeof discovery.issuer !== 'string' || typeof discovery.jwks_uri !== 'string') {
      throw new Error(`discovery document lacks issuer or jwks_uri: ${JSON.stringify(discovery)}`);
    }
    const jres = await fetch(discovery.jwks_uri);
    if (jres.status !== 200) throw new Error(`${discovery.jwks_uri} answered ${jres.status}`);
    jwks = await jres.json();
    if (!Array.isArray(jwks.keys)) throw new Error(`JWKS has no keys array: ${JSON.stringify(jwks)}`);
  } catch (e) {
    errors.push(`cannot get the issuer's keys: ${e.message}`);
    return out;
  }
  const candidates = jwks.keys.filter((k) => k.kid === header.kid);
  if (header.kid && candidates.length !== 1) {
    errors.push(`kid ${JSON.stringify(header.kid)} matches ${candidates.length} keys of ${discovery.jwks_uri} (want exactly 1): kids ${JSON.stringify(jwks.keys.map((k) => k.kid))}`);
  }
  for (const k of candidates) {
    if (k.d !== undefined || k.p !== undefined) errors.push(`the JWKS publishes PRIVATE key material for kid ${k.kid}`);
    if (k.alg !== undefined && k.alg !== header.alg) errors.push(`JWK ${k.kid} has alg ${k.alg}, the token ${header.alg}`);
    if (k.use !== undefined && k.use !== 'sig') errors.push(`JWK ${k.kid} has use ${k.use}, not sig`);
  }
  if (errors.length) return out;

  // §2.6 steps 2–3: signature, alg, iss, aud, iat, exp — as for ID tokens.
  let claims;
  try {
    const { payload } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks), {
      algorithms: [rp.alg],
      issuer: discovery.issuer,
      audience: rp.clientId,
      typ: 'logout+jwt',
      requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti', 'events'],
      clockTolerance: CLOCK_TOLERANCE,
    });
    claims = payload;
  } catch (e) {
    errors.push(`jose.jwtVerify rejected the token: ${e.code ?? ''} ${e.message}`);
    try { out.claims = jose.decodeJwt(token); } catch { /* not decodable */ }
    return out;
  }
  out.claims = claims;
  const now = Math.floor(Date.now() / 1000);

  // iss: exactly the discovery document's issuer (jose compares exactly; say it explicitly).
  if (claims.iss !== discovery.issuer) errors.push(`iss ${JSON.stringify(claims.iss)} is not the discovery issuer ${JSON.stringify(discovery.issuer)}`);
  // aud: the relying party's client_id (a string, or an array holding it).
  const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!auds.includes(rp.clientId) || auds.some((a) => typeof a !== 'string')) {
    errors.push(`aud ${JSON.stringify(claims.aud)} is not the client_id ${rp.clientId}`);
  }
  if (Array.isArray(claims.aud) && claims.aud.length > 1 && claims.azp === undefined) {
    errors.push(`aud has several audiences and no azp: ${JSON.stringify(claims.aud)}`);
  }
  // iat, exp: numbers; exp after iat, at most 120 s after it, and not expired.
  if (!Number.isInteger(claims.iat)) errors.push(`iat ${JSON.stringify(claims.iat)} is not an integer NumericDate`);
  if (!Number.isInteger(claims.exp)) errors.push(`exp ${JSON.stringify(claims.exp)} is not an integer NumericDate`);
  if (claims.iat > now + CLOCK_TOLERANCE) errors.push(`iat ${claims.iat} is in the future (now ${now})`);
  if (!(claims.exp > claims.iat)) errors.push(`exp ${claims.exp} is not after iat ${claims.iat}`);
  if (claims.exp - claims.iat > MAX_LIFETIME) errors.push(`exp - iat = ${claims.exp - claims.iat} s > ${MAX_LIFETIME} s`);
  if (claims.exp <= now - CLOCK_TOLERANCE) errors.push(`exp ${claims.exp} has passed (now ${now})`);
  if (claims.nbf !== undefined && claims.nbf > now + CLOCK_TOLERANCE) errors.push(`nbf ${claims.nbf} is in the future`);
  // jti: present, a non-empty string, never seen before (§2.6 step 7; INTEROP.md: fresh per attempt).
  if (typeof claims.jti !== 'string' || claims.jti === '') {
    errors.push(`jti ${JSON.stringify(claims.jti)} is not a non-empty string`);
  } else if (seenJti.has(claims.jti)) {
    errors.push(`jti ${claims.jti} was seen before (replay)`);
  } else {
    seenJti.add(claims.jti);
  }
  // events: exactly the back-channel-logout member, whose value is {} (§2.4; idpyoidc-strict).
  if (!isPlainObject(claims.events)) {
    errors.push(`events ${JSON.stringify(claims.events)} is not a JSON object`);
  } else {
    const members = Object.keys(claims.events);
    if (members.length !== 1 || members[0] !== BCL_EVENT) {
      errors.push(`events members are ${JSON.stringify(members)}, not exactly [${JSON.stringify(BCL_EVENT)}]`);
    }
    const v = claims.events[BCL_EVENT];
    if (!isPlainObject(v) || Object.keys(v).length !== 0) {
      errors.push(`events[${BCL_EVENT}] is ${JSON.stringify(v)}, not {}`);
    }
  }
  // §2.6 step 4: sub or sid (or both), strings.
  if (claims.sub === undefined && claims.sid === undefined) errors.push('neither sub nor sid is present (§2.4)');
  if (claims.sub !== undefined && (typeof claims.sub !== 'string' || claims.sub === '')) errors.push(`sub ${JSON.stringify(claims.sub)} is not a non-empty string`);
  if (claims.sid !== undefined && (typeof claims.sid !== 'string' || claims.sid === '')) errors.push(`sid ${JSON.stringify(claims.sid)} is not a non-empty string`);
  // §2.6 step 6: no nonce.
  if ('nonce' in claims) errors.push(`nonce is present (${JSON.stringify(claims.nonce)}), which §2.4 forbids`);
  return out;
}

/**
 * Starts the receiver. `issuer.discoveryUrl` names the OP whose tokens are expected.
 * Relying parties are added with `addRp(path, {clientId, alg, respond})`, where `respond(n)`
 * gives the answer `{status, body, headers}` to its n-th (1-based) valid request.
 */
export async function startReceiver(issuer) {
  const rps = new Map();
  const received = [];
  const seenJti = new Set();
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const rp = rps.get(path);
    const body = await readBody(req);
    if (!rp) {
      received.push({ path, at: Date.now(), errors: [`no relying party at ${path}`], body });
      res.writeHead(404).end();
      return;
    }
    const v = await validateLogoutRequest({ method: req.method, headers: req.headers, body }, rp, issuer, seenJti);
    const rec = { path, rp: rp.name, at: Date.now(), ...v, headersIn: req.headers };
    received.push(rec);
    res.setHeader('Cache-Control', 'no-store');
    if (v.errors.length) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'invalid_request', error_description: v.errors.join('; ') }));
      return;
    }
    rp.valid += 1;
    const answer = rp.respond ? rp.respond(rp.valid, rec) : { status: 200 };
    rec.answered = answer.status;
    res.writeHead(answer.status, answer.headers ?? {});
    res.end(answer.body ?? '');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    received,
    seenJti,
    addRp(name, { clientId, alg, respond }) {
      const path = `/rp/${name}`;
      rps.set(path, { name, clientId, alg, respond, valid: 0 });
      return `${base}${path}`;
    },
    setResponder(name, respond) {
      rps.get(`/rp/${name}`).respond = respond;
    },
    /** Requests received by one relying party. */
    of(name) { return received.filter((r) => r.rp === name); },
    /** Every request that broke a rule, with its path and errors. */
    violations() { return received.filter((r) => r.errors.length).map((r) => ({ path: r.path, errors: r.errors, header: r.header, claims: r.claims })); },
    close() { return new Promise((ok) => { server.closeAllConnections?.(); server.close(() => ok()); }); },
  };
}
