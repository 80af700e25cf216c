// The inbox's bell (E3 in-app notifications), paging of the list ("Load more", keyset) and of
// long histories ("Load older messages"), and formatted agent texts rendered without HTML.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useLocalDist, Client, demoKey, launch, ownerClient, shot, startServer, uiLogin, until, SKIP } from './helpers.mjs';

const skip = SKIP;
let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer('inbox-extras');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A visitor with an open conversation and a first message; returns the conversation id. */
async function visitorConversation(base, key, text) {
  const v = new Client(base);
  const s = await v.req('POST', '/api/v1/widget/sessions', { site_key: key });
  v.bearer = s.token;
  const c = await v.req('POST', '/api/v1/widget/conversations', { consent: true });
  await v.req('POST', `/api/v1/widget/conversations/${c.id}/messages`, { client_id: 'v-' + Math.random().toString(36).slice(2), body: text });
  return { id: c.id, visitor: v };
}

test('bell, list paging, history paging and formatted agent texts', { skip, timeout: 180000 }, async () => {
  const base = server.url;
  const pw = 'correct horse battery';
  const owner = await ownerClient(base, { email: 'ann@example.com', name: 'Ann Agent', password: pw });
  await owner.req('PUT', '/api/v1/me/availability', { available: true });
  const key = await demoKey(base);

  // 55 conversations: more than one page (50) of Unassigned.
  const ids = [];
  for (let i = 0; i < 55; i++) ids.push((await visitorConversation(base, key, `Question number ${i}`)).id);

  // One long conversation, taken by Ann: 130 replies, the last ones formatted.
  const long = await visitorConversation(base, key, 'I have a long story');
  for (let i = 1; i <= 127; i++) {
    await owner.req('POST', `/api/v1/conversations/${long.id}/messages`, { client_id: `a-long-${i}`, body: `Reply ${i}` });
  }
  await owner.req('POST', `/api/v1/conversations/${long.id}/messages`, { client_id: 'a-md', body: 'Here is **the fix** and _more_: [the docs](https://example.com/docs)' });
  await owner.req('POST', `/api/v1/conversations/${long.id}/messages`, { client_id: 'a-evil', body: '[click](javascript:alert(1)) <img src=x onerror="window.__xss=1">' });
  await owner.req('POST', `/api/v1/conversations/${long.id}/messages`, { client_id: 'a-list', body: 'Steps:\n\n- one\n- two' });

  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await useLocalDist(ctx, base);
  const page = await ctx.newPage();
  await uiLogin(page, base, 'ann@example.com', pw);

  // ---- the bell: unread count from GET /notifications, then live -------------------------
  const bell = page.locator('button.bell');
  const unread = async () => Number(await bell.getAttribute('data-unread'));
  const first = await until(async () => (await unread()) > 0 && (await unread()), 10000, 'unread notifications');
  await visitorConversation(base, key, 'A brand new question');
  await until(async () => (await unread()) > first, 10000, 'a live notification to raise the count');
  await bell.click();
  const pop = page.locator('.notif-pop');
  await pop.waitFor();
  assert.ok((await pop.locator('.notif.unread').count()) > 0);
  await shot(page, 'inbox-bell');
  await pop.getByRole('button', { name: 'Mark all as read' }).click();
  await until(async () => (await unread()) === 0, 5000, 'count to drop to 0');
  await until(async () => (await owner.req('GET', '/api/v1/notifications')).every((n) => n.read_at), 5000, 'the server to have them read');
  await bell.click();

  // ---- the list: 50 rows, then "Load more" --------------------------------------------------
  await page.goto(base + '/#/inbox/unassigned');
  await page.reload();
  const rows = page.locator('.rows a.row');
  await until(async () => (await rows.count()) === 50, 10000, 'the first page of 50');
  await page.locator('[data-action="load-more"]').click();
  await until(async () => (await rows.count()) === 56, 10000, 'the second page');
  const shown = await rows.evaluateAll((as) => as.map((a) => Number(a.dataset.conversation)));
  assert.equal(new Set(shown).size, shown.length, 'each conversation once');
  for (const id of ids) assert.ok(shown.includes(id), `conversation ${id} listed`);
  await until(async () => (await page.locator('[data-action="load-more"]').count()) === 0, 5000, 'no more to load');

  // ---- a long history: the newest window, then older ones ----------------------------------
  await page.goto(base + `/#/inbox/mine/${long.id}`);
  const msgs = page.locator('.msgs [data-seq]');
  await page.locator('.bubble.rich strong', { hasText: 'the fix' }).waitFor({ timeout: 10000 });
  const seqs = () => msgs.evaluateAll((ms) => ms.map((m) => Number(m.dataset.seq)));
  let s = await seqs();
  assert.ok(s[0] > 1, `opens at the newest window (first seq ${s[0]})`);
  const older = page.locator('[data-action="load-older"]');
  while (await older.count()) {
    const before = s[0];
    await older.click();
    await until(async () => (s = await seqs())[0] < before, 10000, 'older entries');
  }
  assert.equal(s[0], 1, 'reaches the first entry');
  for (let i = 1; i < s.length; i++) assert.equal(s[i], s[i - 1] + 1, `gap-free at ${s[i - 1]}`);

  // ---- formatted, safe agent texts ---------------------------------------------------------
  const fix = page.locator('.bubble.rich', { hasText: 'the fix' });
  assert.equal(await fix.locator('em').textContent(), 'more');
  assert.equal(await fix.locator('a').getAttribute('href'), 'https://example.com/docs');
  assert.equal(await fix.locator('a').getAttribute('rel'), 'noopener noreferrer nofollow');
  const evil = page.locator('.bubble.rich', { hasText: 'click' });
  assert.equal(await evil.locator('a').count(), 0, 'no javascript: link');
  assert.equal(await evil.locator('img').count(), 0, 'markup stays text');
  assert.match(await evil.textContent(), /<img src=x onerror=/);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('.bubble.rich ul li').count(), 2);
  await shot(page, 'inbox-history');
  await ctx.close();
});
