// Runs a real `deprov serve` for the interop tests: a fresh temporary directory (SQLite
// database, key file), a free loopback port, the first tenant's SCIM URL and token parsed
// from its stdout, the CLI run against the same database, and helpers to read its trail.

import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The deprov binary that `cargo build -p deprov-server` (or `cargo test`) produced. */
export function deprovBinary() {
  const bin = process.env.DEPROV_BIN
    ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO, 'target'), 'debug', 'deprov');
  if (!existsSync(bin)) {
    throw new Error(`no deprov binary at ${bin}: run \`cargo build -p deprov-server\` first`);
  }
  return bin;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a truthy value or `timeoutMs` passes; then throws with
 * `what` and the last value seen (so a failure says what deprov last reported).
 */
export async function waitFor(what, probe, { timeoutMs = 20_000, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      if (e.fatal) throw e;
      lastError = e;
    }
    if (Date.now() > deadline) {
      const seen = lastError ? `last error: ${lastError.message}` : `last seen: ${JSON.stringify(last, null, 2)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen}`);
    }
    await sleep(intervalMs);
  }
}

/** Environment for deprov: ours, without any DEPROV_* inherited from the caller. */
function deprovEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('DEPROV_') && k !== 'RUST_LOG') env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * Starts `deprov serve` and resolves once /healthz answers and the first tenant's SCIM
 * base URL and token have been printed.
 */
export async function startDeprov({ name = 'deprov', env = {} } = {}) {
  const bin = deprovBinary();
  const dir = mkdtempSync(join(tmpdir(), `deprov-interop-${name}-`));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const fullEnv = deprovEnv({
    DEPROV_LISTEN: `127.0.0.1:${port}`,
    DEPROV_PUBLIC_URL: url,
    DEPROV_DATABASE_URL: `sqlite://${join(dir, 'deprov.db')}`,
    DEPROV_ALLOW_INSECURE_TARGETS: 'true',
    ...env,
  });
  const logPath = join(dir, 'deprov.log');
  const log = createWriteStream(logPath);
  const child = spawn(bin, ['serve'], { cwd: dir, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; log.write(d); });
  child.stderr.on('data', (d) => log.write(d));
  let exited = null;
  const exitedP = new Promise((r) => child.on('exit', (code, signal) => { exited = { code, signal }; r(exited); }));
  // Never leave a deprov behind, even when the test process dies without running after().
  const reap = () => { if (exited === null) child.kill('SIGKILL'); };
  process.once('exit', reap);

  const tail = () => {
    try { return readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n'); } catch { return ''; }
  };

  const d = {
    url, port, dir, env: fullEnv, child, logPath,
    scimBase: undefined, token: undefined,
    tail,
    /** Runs `deprov ARGS --json` against the same database; resolves to the parsed JSON. */
    async cli(...args) {
      try {
        const { stdout: out } = await execFileP(bin, [...args, '--json'], {
          cwd: dir, env: fullEnv, timeout: 30_000, maxBuffer: 16 << 20,
        });
        return JSON.parse(out);
      } catch (e) {
        const msg = e.stderr ? e.stderr.trim() : e.message;
        throw new Error(`deprov ${args.join(' ')} --json failed: ${msg}${e.stdout ? `\nstdout: ${e.stdout}` : ''}`);
      }
    },
    /** A SCIM request to tenant `tenant` (default: the first one), JSON in and out. */
    async scim(method, path, body, { tenant } = {}) {
      const base = tenant?.scimBase ?? d.scimBase;
      const token = tenant?.token ?? d.token;
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/scim+json',
          ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json;
      try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
      return { status: res.status, headers: res.headers, text, json, method, path, request: body };
    },
    /** Creates a tenant; returns `{tenant, scimBase, token}`. */
    async createTenant(tenantName) {
      const t = await d.cli('tenant', 'create', tenantName);
      return { tenant: t.tenant, scimBase: t.scim_base_url, token: t.scim_token };
    },
    /** The newest event of `kind` for SCIM user `userId`, or undefined. */
    async findEvent({ userId, kind, tenant, notIn = [] }) {
      const args = ['events', 'list', '--limit', '200'];
      if (tenant) args.push('--tenant', tenant);
      const rows = await d.cli(...args);
      return rows.find((e) => e.user_id === userId && e.kind === kind && !notIn.includes(e.id));
    },
    async eventTrail(id) {
      return d.cli('events', 'show', id);
    },
    /** Waits until the event's deliveries are all settled (delivered/dead/cancelled). */
    async waitSettled(eventId, opts) {
      let last;
      try {
        return await waitFor(`event ${eventId} to have all deliveries settled`, async () => {
          last = await d.eventTrail(eventId);
          if (last.deliveries.length === 0) {
            // Deliveries are written in the event's own transaction (DESIGN.md): none now
            // means none ever.
            const err = new Error(`event ${eventId} (${last.kind}) has no deliveries: deprov enqueued nothing for the registered targets`);
            err.fatal = true;
            throw err;
          }
          const done = last.deliveries.length > 0
            && last.deliveries.every((x) => ['delivered', 'dead', 'cancelled'].includes(x.status));
          return done ? last : false;
        }, opts);
      } catch (e) {
        if (e.fatal) throw new Error(`${e.message}\nlast trail: ${JSON.stringify(last, null, 2)}`);
        throw new Error(`${e.message}\nlast trail: ${JSON.stringify(last, null, 2)}\n---- deprov log ----\n${tail()}`);
      }
    },
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exitedP;
        clearTimeout(t);
      }
      process.removeListener('exit', reap);
      log.end();
      if (!process.env.DEPROV_INTEROP_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await waitFor('deprov to print the SCIM base URL and token, and /healthz to answer 200', async () => {
      if (exited) throw new Error(`deprov serve exited early (${JSON.stringify(exited)})`);
      const base = stdout.match(/SCIM base URL:\s*(\S+)/);
      const token = stdout.match(/SCIM token:\s*(\S+)/);
      if (!base || !token) return false;
      const res = await fetch(`${url}/healthz`);
      if (res.status !== 200) return false;
      d.scimBase = base[1];
      d.token = token[1];
      return true;
    }, { timeoutMs: 30_000, intervalMs: 100 });
  } catch (e) {
    await d.stop().catch(() => {});
    throw new Error(`${e.message}\n---- deprov log ----\n${tail()}`);
  }
  return d;
}

/** Entra ID's default deactivation: capitalised op, boolean as a string. */
export const ENTRA_DEACTIVATE = {
  schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
  Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
};

/** Okta's deactivation: a path-less replace. */
export const OKTA_DEACTIVATE = {
  schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
  Operations: [{ op: 'replace', value: { active: false } }],
};

/** Okta's re-activation. */
export const OKTA_REACTIVATE = {
  schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
  Operations: [{ op: 'replace', value: { active: true } }],
};

/** A user as Okta creates one. */
export function oktaUser({ userName, externalId, email = userName, given = 'Test', family = 'User' }) {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName,
    externalId,
    name: { givenName: given, familyName: family },
    emails: [{ primary: true, value: email, type: 'work' }],
    displayName: `${given} ${family}`,
    active: true,
    groups: [],
    password: 'Not-Used-1!',
  };
}

/** Describes a SCIM exchange for an assertion message. */
export function describe(res) {
  return `${res.method} ${res.path} ${res.request === undefined ? '' : JSON.stringify(res.request)} → ${res.status} ${res.text}`;
}
