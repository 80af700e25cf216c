// W1: the widget on a hostile host page — global CSS resets with !important, and a page that
// redefines fetch, JSON, WebSocket and Array.prototype methods after the widget loaded —
// looks and works the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useLocalDist, demoKey, launch, openWidget, ownerClient, shot, startServer, until, visitorSend, SKIP } from './helpers.mjs';

const skip = SKIP;
let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer('hostile');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const hostilePage = (key) => `<!doctype html><html><head><title>Hostile</title>
<style>
  * { all: unset !important; }
  html, body { display: block !important; font: 40px/3 "Comic Sans MS", cursive !important; color: red !important; background: #ff0 !important; }
  div, section, button, footer, header, textarea, form, span { display: block !important; border: 6px solid red !important; margin: 20px !important; padding: 30px !important; font-size: 40px !important; transform: rotate(3deg) !important; }
  html { font-size: 48px !important; }
  body * { z-index: 2147483647 !important; position: static !important; }
  p { color: blue !important; }
</style></head>
<body><p>Hostile page body text</p>
<script async src="/widget.js" data-site-key="${key}"></script>
</body></html>`;

const HOSTILE_JS = () => {
  const boom = (name) => function () { throw new Error('hostile ' + name); };
  window.fetch = boom('fetch');
  window.WebSocket = boom('WebSocket');
  window.XMLHttpRequest = boom('XMLHttpRequest');
  JSON.parse = boom('JSON.parse');
  JSON.stringify = () => '"hostile"';
  for (const m of ['push', 'pop', 'shift', 'unshift', 'map', 'filter', 'forEach', 'reduce', 'indexOf', 'includes', 'join', 'slice', 'splice', 'sort', 'concat', 'find', 'some', 'every']) {
    Array.prototype[m] = boom('Array.prototype.' + m);
  }
  window.__hostile = true;
};

async function measure(page, w) {
  await page.mouse.move(5, 5); // no hover effects
  await page.waitForTimeout(300);
  return w.evaluate((host) => {
    const r = host.shadowRoot;
    const box = (sel) => {
      const b = r.querySelector(sel).getBoundingClientRect();
      return [Math.round(b.x), Math.round(b.y), Math.round(b.width), Math.round(b.height)];
    };
    const cs = (sel, p) => getComputedStyle(r.querySelector(sel)).getPropertyValue(p);
    return {
      launcher: box('.launcher'), win: box('.win'), header: box('.hd'),
      headerBg: cs('.hd', 'background-color'), font: cs('textarea', 'font-size'), family: cs('.root', 'font-family'),
      z: getComputedStyle(host).zIndex,
    };
  });
}

test('the widget looks and works the same on a hostile page', { skip, timeout: 90000 }, async () => {
  const base = server.url;
  const owner = await ownerClient(base);
  await owner.req('PUT', '/api/v1/me/availability', { available: true });
  const key = await demoKey(base);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await useLocalDist(ctx, base);
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // Reference: the widget on the plain demo page.
  await page.goto(base + '/demo');
  const ref = await measure(page, await openWidget(page));
  await shot(page, 'widget-reference');

  // The hostile page, served from the server's own origin (allowed for visitors).
  await page.route(base + '/hostile', (r) => r.fulfill({ contentType: 'text/html', body: hostilePage(key) }));
  await page.goto(base + '/hostile');
  await page.waitForFunction(() => !!window.Confab);
  const w = await openWidget(page);
  const got = await measure(page, w);
  assert.deepEqual(got, ref, 'same geometry and styles as on the plain page');
  assert.equal(got.z, '2147483647');
  // Only window.Confab is added to the page's globals (and it is not enumerable).
  assert.deepEqual(await page.evaluate(() => Object.keys(window).filter((k) => /confab/i.test(k))), []);
  assert.equal(await page.evaluate(() => typeof window.Confab.open), 'function');
  await shot(page, 'widget-hostile');
  // Now the page breaks the usual globals. From here on the test only uses locators, which
  // run in Playwright's isolated world.
  await page.evaluate(HOSTILE_JS);

  // It still works: send, get a reply, via the captured natives.
  await visitorSend(w, 'Hello from a hostile page');
  await until(async () => (await w.locator('.pending').count()) === 0 && (await w.locator('.bub', { hasText: 'Hello from a hostile page' }).count()) === 1, 15000, 'message acked');
  const list = await owner.req('GET', '/api/v1/conversations?folder=unassigned');
  const rows = Array.isArray(list) ? list : list.conversations ?? list.items;
  const row = rows[0];
  const id = row.id ?? row.conversation.id;
  await owner.req('POST', `/api/v1/conversations/${id}/messages`, { client_id: 'e2e-hostile-1', body: 'Reply to the hostile page', kind: 'text', mentions: [] });
  await w.locator('.bub', { hasText: 'Reply to the hostile page' }).waitFor({ timeout: 10000 });
  // Close and reopen with the keyboard, then reload-free continuity: all still fine.
  await w.locator('textarea').first().press('Escape');
  await w.locator('.win').waitFor({ state: 'hidden' });
  await w.locator('.launcher').click();
  await w.locator('.bub', { hasText: 'Reply to the hostile page' }).waitFor();
  assert.deepEqual(errors, [], 'no errors on the page');
  await shot(page, 'widget-hostile-chat');
  await ctx.close();
});
