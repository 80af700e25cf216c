// Shared plumbing for the end-to-end tests: the real server binary, headless Chromium, and a
// small HTTP client for the agent and visitor APIs.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync, createWriteStream, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BIN = process.env.CONFAB_BIN || '/work/main/target/debug/confab';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const RESULTS = new URL('../test-results/', import.meta.url).pathname;
mkdirSync(RESULTS, { recursive: true });

export function haveBinary() {
  return existsSync(BIN);
}

/** Why the end-to-end tests cannot run here (false when they can). */
export const SKIP = !existsSync(BIN)
  ? `server binary ${BIN} not built (set CONFAB_BIN)`
  : !existsSync(CHROMIUM)
    ? `no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)`
    : !existsSync(new URL('../dist/widget.js', import.meta.url))
      ? 'dist/ not built: run npm run build first'
      : false;

/** Starts `confab serve` on a free port with a fresh data dir; resolves once it listens. */
export async function startServer(name = 'server') {
  const dir = mkdtempSync(join(tmpdir(), 'confab-e2e-'));
  const log = createWriteStream(join(RESULTS, `${name}.log`));
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' } });
  proc.stderr.pipe(log);
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('server did not print "listening on" within 30 s')), 30000);
    proc.stdout.on('data', (d) => {
      log.write(d);
      buf += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening`));
    });
  });
  proc.stdout.on('data', (d) => log.write(d));
  return {
    url,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => { proc.kill('SIGKILL'); r(); }, 5000);
          proc.on('exit', () => { clearTimeout(t); r(); });
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const DIST = new URL('../dist/', import.meta.url).pathname;
const TYPES = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };

/**
 * Serves the front-ends from this checkout's dist/ instead of the copy embedded in the
 * binary (which is only as new as its last cargo build), unless E2E_EMBEDDED=1. The demo
 * page still gets the server's site key.
 */
export async function useLocalDist(context, base) {
  if (process.env.E2E_EMBEDDED === '1') return;
  let key = null;
  await context.route((url) => url.origin === base && (url.pathname === '/' || url.pathname === '/index.html' || url.pathname === '/demo' || url.pathname === '/widget.js' || url.pathname.startsWith('/assets/')), async (route) => {
    const path = new URL(route.request().url()).pathname;
    let file = path === '/' ? 'index.html' : path === '/demo' ? 'demo.html' : path.slice(1);
    let body;
    try {
      body = readFileSync(join(DIST, file));
    } catch {
      return route.fulfill({ status: 404, body: 'not found' });
    }
    if (file === 'demo.html') {
      key ??= await demoKey(base);
      body = body.toString('utf8').replace('{{SITE_KEY}}', key);
    }
    await route.fulfill({ status: 200, contentType: TYPES[file.split('.').pop()] ?? 'application/octet-stream', body });
  });
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
      // Pages fulfilled by useLocalDist() have no address, so Chromium would treat them as
      // public and block their sockets to 127.0.0.1.
      '--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessChecks'],
  });
}

/** Records Notification calls in window.__notes (the real ones may not show headless). */
export const RECORD_NOTIFICATIONS = () => {
  const N = window.Notification;
  if (!N) return;
  window.__notes = [];
  function Rec(title, opts) {
    window.__notes.push({ title, body: opts && opts.body });
    try {
      return new N(title, opts);
    } catch {
      return { close() {}, set onclick(_) {} };
    }
  }
  Object.defineProperty(Rec, 'permission', { get: () => N.permission });
  Rec.requestPermission = (...a) => N.requestPermission(...a);
  window.Notification = Rec;
};

/** A cookie-and-CSRF client for the agent API, or a bearer client for the visitor API. */
export class Client {
  constructor(base) {
    this.base = base;
    this.cookie = '';
    this.csrf = '';
    this.bearer = '';
  }
  async req(method, path, body) {
    const headers = { Origin: this.base, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.cookie) headers.Cookie = this.cookie;
    if (this.csrf && method !== 'GET') headers['X-CSRF-Token'] = this.csrf;
    if (this.bearer) headers.Authorization = 'Bearer ' + this.bearer;
    const res = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = res.headers.getSetCookie?.() ?? [];
    for (const c of set) {
      const kv = c.split(';')[0];
      if (kv.startsWith('confab_session=')) this.cookie = kv;
    }
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return data;
  }
  async login(email, password) {
    const r = await this.req('POST', '/api/v1/auth/login', { email, password });
    this.csrf = r.csrf_token;
    return r.agent;
  }
}

export async function demoKey(base) {
  const html = await (await fetch(base + '/demo')).text();
  const m = /<script[^>]*data-site-key="([^"]+)"/.exec(html);
  if (!m || m[1].includes('{{')) throw new Error('no site key in /demo');
  return m[1];
}

/** Creates the owner through the API and returns a signed-in client. */
export async function ownerClient(base, { email = 'owner@example.com', name = 'Olivia Owner', password = 'correct horse battery' } = {}) {
  const c = new Client(base);
  const r = await c.req('POST', '/api/v1/setup', { email, name, password });
  if (r && r.csrf_token) c.csrf = r.csrf_token;
  if (!c.cookie || !c.csrf) await c.login(email, password);
  return c;
}

/** Signs a browser context in as an agent through the login form. */
export async function uiLogin(page, base, email, password) {
  await page.goto(base + '/#/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.folders').waitFor();
}

export function widget(page) {
  return page.locator('confab-widget');
}

export async function openWidget(page) {
  const w = widget(page);
  await w.locator('.launcher').waitFor({ state: 'visible' });
  if (await w.locator('.win').isHidden()) await w.locator('.launcher').click();
  await w.locator('.win').waitFor({ state: 'visible' });
  return w;
}

export async function visitorSend(w, text) {
  const consent = w.locator('.consent');
  if (await consent.isVisible()) await consent.locator('input').check();
  await w.locator('textarea').first().fill(text);
  await w.locator('textarea').first().press('Enter');
}

export async function shot(page, name) {
  await page.screenshot({ path: join(RESULTS, name + '.png') });
}

/** Polls until f() is truthy (or throws its last error after `ms`). */
export async function until(f, ms = 10000, what = 'condition') {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
}
