// Dev aid: screenshots of the widget against a mocked server (Playwright routes), so the UI
// can be checked without the Rust server. Usage: node scripts/mock-shots.mjs
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';

const out = new URL('../test-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const widget = readFileSync(new URL('../dist/widget.js', import.meta.url));
const demo = readFileSync(new URL('../dist/demo.html', import.meta.url), 'utf8').replace('{{SITE_KEY}}', 'pk_demo');
const ORIGIN = 'http://confab.test';
const config = {
  site_name: 'Acme Support', welcome_html: '<p><strong>Hi there!</strong> Ask us anything about <em>Acme</em>.</p>',
  online: true, online_message_html: '<p>We usually reply in a few minutes.</p>', offline_message_html: '<p>We are away.</p>',
  next_open: null, privacy_url: 'https://example.com/privacy', terms_url: 'https://example.com/terms',
  consent_text: 'I agree that my chat is stored.', who_may_chat: 'anyone', visible: true,
  meeting_url: 'https://example.com/meet', max_attachment_bytes: 10485760, attachment_types: ['image/png', 'image/jpeg', 'application/pdf'],
};
const conv = { id: 12, status: 'open', seq: 0, agent: null, agent_read_seq: 0, visitor_read_seq: 0, rating: null, created_at: '2026-11-21T12:00:00Z' };
let seq = 0;
const msgs = [];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: process.env.LANG_TAG || 'en-US' });
const page = await ctx.newPage();
page.on('console', (m) => console.log('console:', m.text()));
page.on('pageerror', (e) => console.log('pageerror:', e.message));
await page.route(ORIGIN + '/**', async (route) => {
  const u = new URL(route.request().url());
  const m = route.request().method();
  const json = (b, s = 200) => route.fulfill({ status: s, contentType: 'application/json', body: JSON.stringify(b) });
  if (u.pathname === '/demo') return route.fulfill({ contentType: 'text/html', body: demo });
  if (u.pathname === '/widget.js') return route.fulfill({ contentType: 'text/javascript', body: widget });
  if (u.pathname === '/api/v1/widget/config') return json(config);
  if (u.pathname === '/api/v1/widget/sessions') return json({ token: 'tok', contact: { id: 7 } }, 201);
  if (u.pathname === '/api/v1/widget/conversations' && m === 'POST') return json(conv, 201);
  if (u.pathname === '/api/v1/widget/conversations') return json([conv]);
  if (u.pathname === '/api/v1/widget/page-views') return json({}, 201);
  return json({ error: { code: 'not_found', message: 'nope' } }, 404);
});
let sock;
await page.routeWebSocket(/\/api\/v1\/widget\/ws/, (ws) => {
  sock = ws;
  ws.onMessage((raw) => {
    const f = JSON.parse(raw);
    if (f.type === 'hello') ws.send(JSON.stringify({ type: 'ready', contact_id: 7 }));
    if (f.type === 'send') {
      const msg = { id: 100 + ++seq, conversation_id: 12, seq, kind: 'text', author: { kind: 'visitor', name: null }, body: f.body, html: null, event: null, attachment: null, client_id: f.client_id, created_at: new Date().toISOString() };
      msgs.push(msg);
      setTimeout(() => ws.send(JSON.stringify({ type: 'ack', client_id: f.client_id, message: msg })), 150);
    }
  });
});
const agent = (o) => { const msg = { id: 100 + ++seq, conversation_id: 12, seq, author: { kind: 'agent', name: 'Ann Lee' }, html: null, event: null, attachment: null, client_id: null, created_at: new Date().toISOString(), ...o }; sock.send(JSON.stringify({ type: 'message', conversation_id: 12, message: msg })); };
await page.goto(ORIGIN + '/demo');
await page.waitForTimeout(500);
await page.screenshot({ path: out + 'mock-widget-closed.png' });
const w = page.locator('confab-widget');
await w.locator('.launcher').click();
await page.waitForTimeout(300);
await page.screenshot({ path: out + 'mock-widget-open.png' });
await w.locator('textarea').fill('Hi! Is there a discount for teams? See https://example.com/pricing');
await w.locator('textarea').press('Enter');
await page.waitForTimeout(200);
await page.screenshot({ path: out + 'mock-widget-consent.png' });
await w.locator('.consent input').check();
await w.locator('textarea').press('Enter');
await page.waitForTimeout(500);
await w.locator('textarea').fill('Also: do you ship to Norway?');
await w.locator('textarea').press('Enter');
await page.waitForTimeout(300);
agent({ kind: 'event', body: '', event: { type: 'joined', agent_id: 3, display_name: 'Ann Lee', avatar_url: null } });
agent({ kind: 'text', body: 'Hello! Yes, **20%** for 5+ seats.', html: '<p>Hello! Yes, <strong>20%</strong> for 5+ seats. See <a href="https://example.com">pricing</a>.</p>' });
sock.send(JSON.stringify({ type: 'read', conversation_id: 12, seq: 1 }));
sock.send(JSON.stringify({ type: 'typing', conversation_id: 12, author: { kind: 'agent', name: 'Ann Lee' }, typing: true }));
await page.waitForTimeout(400);
await page.screenshot({ path: out + 'mock-widget-chat.png' });
agent({ kind: 'event', body: '', event: { type: 'closed' } });
sock.send(JSON.stringify({ type: 'typing', conversation_id: 12, author: { kind: 'agent', name: 'Ann Lee' }, typing: false }));
await page.waitForTimeout(300);
await page.screenshot({ path: out + 'mock-widget-closed-conv.png' });
await page.setViewportSize({ width: 390, height: 760 });
await page.waitForTimeout(200);
await page.screenshot({ path: out + 'mock-widget-phone.png' });
await browser.close();
console.log('wrote screenshots to', out);
