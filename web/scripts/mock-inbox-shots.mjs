// Dev aid: screenshots of the inbox against a mocked server (Playwright routes).
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync, existsSync } from 'node:fs';

const out = new URL('../test-results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const dist = new URL('../dist/', import.meta.url).pathname;
const ORIGIN = 'http://confab.test';
const now = Date.now();
const iso = (m) => new Date(now - m * 60000).toISOString();
const me = { id: 1, email: 'ann@acme.test', name: 'Ann Lee', display_name: 'Ann', avatar_url: null, role: 'owner', access: 'full', available: true, notify_desktop: true, notify_sound: true, notify_all_messages: false, deactivated: false };
const agents = [me, { ...me, id: 2, email: 'bo@acme.test', name: 'Bo Berg', display_name: 'Bo', role: 'agent', available: true }, { ...me, id: 3, email: 'cy@acme.test', name: 'Cy Nagy', display_name: 'Cy', role: 'agent', access: 'restricted', available: false }];
const settings = { allowed_origins: ['https://www.acme.test'], welcome_message: 'Hi! How can we help?', online_message: 'We are online.', offline_message: 'We are away.', wait_time_secs: 120, office_hours: { timezone: 'Europe/Stockholm', intervals: [{ day: 'mon', from: '09:00', to: '17:00' }] }, reopen_policy: 'reopen', who_may_chat: 'anyone', privacy_url: null, terms_url: null, consent_text: null, inactivity_timeout_secs: 1800, meeting_url: 'https://cal.acme.test/ann', max_attachment_bytes: 10485760 };
const sites = [{ id: 1, name: 'acme.test', public_key: 'pk_demo_123', settings }];
const rows = [
  { conversation: { id: 12, site_id: 1, contact_id: 7, channel: 'web', status: 'open', assignee_id: null, last_visitor_seq: 3, tags: ['pricing'], last_message_at: iso(2), created_at: iso(10) }, contact_name: 'Maja Svensson', contact_email: 'maja@example.se', last_message: { author_kind: 'visitor', author_name: null, kind: 'text', body: 'Do you have a discount for teams?', created_at: iso(2) }, unread: true, my_read_seq: 1, last_visitor_seq: 3 },
  { conversation: { id: 11, site_id: 1, contact_id: 6, channel: 'web', status: 'open', assignee_id: null, tags: [], last_message_at: iso(25), created_at: iso(30) }, contact_name: null, contact_email: null, last_message: { author_kind: 'visitor', kind: 'text', body: 'Hello? Is anyone there', created_at: iso(25) }, unread: false, my_read_seq: 4, last_visitor_seq: 4 },
  { conversation: { id: 9, site_id: 1, contact_id: 5, channel: 'web', status: 'open', assignee_id: null, offline: true, tags: [], last_message_at: iso(300), created_at: iso(300) }, contact_name: 'Péter Kovács', last_message: { author_kind: 'visitor', kind: 'text', body: 'Please email me the invoice for October.', created_at: iso(300) }, unread: true, my_read_seq: 0, last_visitor_seq: 1 },
];
const msgs = [
  { id: 1, conversation_id: 12, seq: 1, visible_seq: 1, kind: 'text', author_kind: 'visitor', agent_id: null, author_name: null, body: 'Hi! Do you have a discount for teams?', event: null, attachment: null, client_id: 'w-1', mentions: [], created_at: iso(9) },
  { id: 2, conversation_id: 12, seq: 2, visible_seq: 2, kind: 'event', author_kind: 'system', agent_id: null, author_name: null, body: '', event: { type: 'online', message: 'We are online.' }, attachment: null, client_id: null, mentions: [], created_at: iso(9) },
  { id: 3, conversation_id: 12, seq: 3, visible_seq: null, kind: 'note', author_kind: 'agent', agent_id: 2, author_name: 'Bo', body: '@Ann she asked about this last week too, see the earlier chat', event: null, attachment: null, client_id: null, mentions: [1], created_at: iso(8) },
  { id: 4, conversation_id: 12, seq: 4, visible_seq: 3, kind: 'event', author_kind: 'system', agent_id: null, author_name: null, body: '', event: { type: 'joined', agent_id: 1, display_name: 'Ann', by: 1 }, attachment: null, client_id: null, mentions: [], created_at: iso(7) },
  { id: 5, conversation_id: 12, seq: 5, visible_seq: 4, kind: 'text', author_kind: 'agent', agent_id: 1, author_name: 'Ann', body: 'Hi Maja! Yes: 20% off from 5 seats. Details: https://acme.test/pricing', html: '<p>Hi Maja! Yes: <strong>20% off</strong> from 5 seats. Details: <a href="https://acme.test/pricing">acme.test/pricing</a></p>', event: null, attachment: null, client_id: 'a-1', mentions: [], created_at: iso(6) },
  { id: 6, conversation_id: 12, seq: 6, visible_seq: 5, kind: 'text', author_kind: 'visitor', agent_id: null, author_name: null, body: 'Great, thanks! And can we pay yearly?', event: null, attachment: null, client_id: 'w-2', mentions: [], created_at: iso(2) },
];
const contact = { id: 7, site_id: 1, name: 'Maja Svensson', email: 'maja@example.se', phone: null, verified: false, user_agent: 'Firefox 132 on macOS 14', ip: '203.0.113.7', location: 'Stockholm, Sweden', consent_at: iso(10), consent_text: 'I agree that my chat is stored.', tags: [] };
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
const ctx = await browser.newContext({ viewport: { width: 1440, height: 860 }, locale: process.env.LANG_TAG || 'en-US' });
const page = await ctx.newPage();
page.on('pageerror', (e) => console.log('pageerror:', e.message));
page.on('console', (m) => m.type() === 'error' && console.log('console:', m.text()));
let loggedIn = process.env.LOGIN ? false : true;
await page.route(ORIGIN + '/**', async (route) => {
  const u = new URL(route.request().url());
  const m = route.request().method();
  const json = (b, s = 200) => route.fulfill({ status: s, contentType: 'application/json', body: JSON.stringify(b) });
  if (u.pathname === '/') return route.fulfill({ contentType: 'text/html', body: readFileSync(dist + 'index.html') });
  if (u.pathname.startsWith('/assets/')) return route.fulfill({ contentType: u.pathname.endsWith('.css') ? 'text/css' : 'text/javascript', body: readFileSync(dist + u.pathname.slice(1)) });
  const p = u.pathname.replace('/api/v1', '');
  if (p === '/setup') return json({ needs_setup: false });
  if (p === '/me') return loggedIn ? json({ ...me, csrf_token: 'x' }) : json({ error: { code: 'unauthorized', message: 'not signed in' } }, 401);
  if (p === '/auth/login') { loggedIn = true; return json({ agent: me, csrf_token: 'x' }); }
  if (p === '/agents') return json(agents);
  if (p === '/sites') return json(sites);
  if (p === '/teams') return json([{ id: 1, name: 'Sales', members: [1, 2] }]);
  if (p === '/folders') return json({ unassigned: 3, mine: 1, others: 4, snoozed: 0, closed: 9 });
  if (p === '/conversations') return json(rows);
  if (p === '/conversations/12') return json({ conversation: { ...rows[0].conversation, visitor_read_seq: 4 }, contact, tags: ['pricing'] });
  if (p === '/conversations/12/messages') return json(msgs);
  if (p === '/contacts/7') return json({ contact, conversations: [{ id: 12, status: 'open', created_at: iso(10) }, { id: 4, status: 'closed', created_at: iso(60 * 24 * 7) }], page_views: [{ url: 'https://acme.test/', title: 'Acme — Home', referrer: 'https://www.google.com/', created_at: iso(12) }, { url: 'https://acme.test/pricing', title: 'Pricing', referrer: null, created_at: iso(10) }], notes: [{ id: 1, agent_id: 2, body: 'Decision maker for a 12-seat team.', created_at: iso(60 * 24) }] });
  return json({ error: { code: 'not_found', message: 'nope' } }, 404);
});
await page.routeWebSocket(/\/api\/v1\/ws/, (ws) => {
  // Cookie-authenticated sockets get `ready` at once.
  setTimeout(() => ws.send(JSON.stringify({ type: 'ready', agent_id: 1, counts: { unassigned: 3, mine: 1, others: 4, snoozed: 0, closed: 9 } })), 10);
  ws.onMessage((raw) => {
    const f = JSON.parse(raw);
    if (f.type === 'subscribe') {
      setTimeout(() => {
        ws.send(JSON.stringify({ type: 'viewers', conversation_id: 12, viewing: [1, 2], typing: [2] }));
        ws.send(JSON.stringify({ type: 'typing', conversation_id: 12, author: { kind: 'visitor', name: null }, typing: true }));
      }, 100);
    }
  });
});
if (process.env.LOGIN) {
  await page.goto(ORIGIN + '/#/login');
  await page.waitForTimeout(400);
  await page.screenshot({ path: out + 'mock-inbox-login.png' });
  await browser.close();
  process.exit(0);
}
await page.goto(ORIGIN + '/#/inbox/unassigned/12');
await page.waitForTimeout(800);
await page.screenshot({ path: out + 'mock-inbox-conversation.png' });
await page.click('.tabs >> text=Internal note');
await page.fill('.composer textarea', '@B');
await page.waitForTimeout(200);
await page.screenshot({ path: out + 'mock-inbox-mention.png' });
await page.goto(ORIGIN + '/#/settings/sites/1');
await page.waitForTimeout(500);
await page.screenshot({ path: out + 'mock-inbox-settings.png', fullPage: true });
await page.goto(ORIGIN + '/#/settings/agents');
await page.waitForTimeout(300);
await page.screenshot({ path: out + 'mock-inbox-agents.png' });
await browser.close();
console.log('ok');
