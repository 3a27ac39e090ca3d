// A minimal browser for driving real OpenID Providers in tests: one cookie jar for
// 127.0.0.1 (cookies ignore ports, as in browsers), manual redirects, and a parser for the
// first form of a page (oidc-provider's devInteractions login and consent forms).

import assert from 'node:assert/strict';

export class Browser {
  constructor() { this.jar = new Map(); this.trace = []; }

  cookieHeader(url) {
    const path = new URL(url).pathname;
    return [...this.jar.values()]
      .filter((c) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/')
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }

  store(res, url) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'path') path = v.trim() || '/';
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${name};${path}`;
      if (expired || value === '') this.jar.delete(id); else this.jar.set(id, { name, value, path });
    }
  }

  /** One request, no redirect following. */
  async request(url, { method = 'GET', form } = {}) {
    const headers = { accept: 'text/html,application/json' };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.store(res, url);
    const text = await res.text();
    this.trace.push(`${method} ${url} → ${res.status}${res.headers.get('location') ? ` → ${res.headers.get('location')}` : ''}`);
    return { status: res.status, location: res.headers.get('location'), text, url, headers: res.headers };
  }

  /**
   * Follows redirects (POST becomes GET on 302/303) until a non-redirect answer, or a
   * redirect to a URL starting with `stopAt` (returned unfollowed, e.g. a redirect_uri).
   */
  async navigate(url, opts = {}, stopAt = undefined) {
    let res = await this.request(url, opts);
    for (let hops = 0; [301, 302, 303, 307, 308].includes(res.status); hops += 1) {
      assert.ok(hops < 20, `redirect loop:\n${this.trace.join('\n')}`);
      const next = new URL(res.location, res.url).href;
      if (stopAt && next.startsWith(stopAt)) return { ...res, redirectedTo: next };
      res = await this.request(next, [307, 308].includes(res.status) ? opts : {});
    }
    return res;
  }
}

/** The first POST form of an HTML page: its absolute action and its inputs' values. */
export function parseForm(page) {
  const form = page.text.match(/<form\b[^>]*>[\s\S]*?<\/form>/i);
  assert.ok(form, `no form on ${page.url} (${page.status}):\n${page.text.slice(0, 2000)}`);
  const action = form[0].match(/action="([^"]*)"/i)?.[1] ?? page.url;
  const fields = {};
  for (const input of form[0].matchAll(/<input\b[^>]*>/gi)) {
    const name = input[0].match(/name="([^"]*)"/i)?.[1];
    if (name) fields[name] = input[0].match(/value="([^"]*)"/i)?.[1] ?? '';
  }
  return { action: new URL(action.replace(/&amp;/g, '&'), page.url).href, fields };
}
