// Issue acceptance: a visitor on /demo chats with an agent in the inbox, end to end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useLocalDist, RECORD_NOTIFICATIONS, launch, openWidget, shot, startServer, until, visitorSend, widget, SKIP } from './helpers.mjs';

const skip = SKIP;
let server, browser;

before(async () => {
  if (skip) return;
  server = await startServer('chat');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('visitor and agent chat: live list, notification, join, typing, reply, receipts, reload, close, rating, new conversation', { skip, timeout: 120000 }, async () => {
  const base = server.url;
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 }, permissions: ['notifications'] });
  await useLocalDist(agentCtx, base);
  await agentCtx.grantPermissions(['notifications'], { origin: base });
  await agentCtx.addInitScript(RECORD_NOTIFICATIONS);
  const agent = await agentCtx.newPage();
  const visitorCtx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await useLocalDist(visitorCtx, base);
  const visitor = await visitorCtx.newPage();

  // First run: the inbox asks for the owner account.
  await agent.goto(base + '/');
  await agent.getByRole('heading', { name: 'Create the owner account' }).waitFor();
  await shot(agent, 'inbox-setup');
  await agent.getByLabel('Name').fill('Ann Agent');
  await agent.getByLabel('Email').fill('ann@example.com');
  await agent.getByLabel('Password').fill('correct horse battery');
  await agent.getByRole('button', { name: 'Create the owner account' }).click();
  await agent.locator('.folders').waitFor();
  const avail = agent.getByRole('switch');
  if ((await avail.getAttribute('aria-checked')) !== 'true') await avail.click();
  await until(async () => (await avail.getAttribute('aria-checked')) === 'true', 5000, 'agent available');
  await agent.locator('.conn.ok').waitFor();
  await agent.goto(base + '/#/inbox/unassigned');

  // The visitor writes from the demo page.
  await visitor.goto(base + '/demo');
  const w = await openWidget(visitor);
  await shot(visitor, 'widget-open');
  await visitorSend(w, 'Hello from the visitor');
  await w.locator('.row.me .bub', { hasText: 'Hello from the visitor' }).waitFor();
  await until(async () => !(await w.locator('.pending').count()), 10000, 'visitor message acked');

  // It appears live in Unassigned, with a desktop notification.
  const row = agent.locator('.rows a.row', { hasText: 'Hello from the visitor' });
  await row.waitFor({ timeout: 10000 });
  await until(() => agent.evaluate(() => (window.__notes || []).length > 0), 10000, 'desktop notification');

  // The agent takes it; the visitor sees "<agent> joined" and the agent's name in the header.
  await row.click();
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  await w.locator('.ev', { hasText: 'Ann Agent joined' }).waitFor({ timeout: 10000 });
  await until(async () => (await w.locator('#cf-title').textContent()) === 'Ann Agent', 5000, 'header switched to agent');

  // Typing shows both ways.
  const composer = agent.locator('.composer textarea');
  await composer.click();
  await composer.pressSequentially('Hi the', { delay: 30 });
  await w.locator('.typing', { hasText: 'is typing' }).waitFor({ timeout: 10000 });
  await w.locator('textarea').first().pressSequentially('I am ty', { delay: 30 });
  await agent.locator('.typing-line', { hasText: 'The visitor is typing' }).waitFor({ timeout: 10000 });

  // The reply arrives; several messages in a row work.
  await composer.fill('Hi there! How can I help?');
  await composer.press('Enter');
  await w.locator('.row.them .bub', { hasText: 'Hi there! How can I help?' }).waitFor({ timeout: 10000 });
  await w.locator('textarea').first().fill('');
  await visitorSend(w, 'I need a quote');
  await visitorSend(w, 'for 12 seats');
  await agent.locator('.msgs .bubble', { hasText: 'for 12 seats' }).waitFor();

  // Read receipts: the visitor has the window open, so the agent sees "Seen"; the agent views
  // the conversation, so the visitor sees "Seen" under their last read message.
  await agent.locator('.msg .seen').waitFor({ timeout: 10000 });
  await w.locator('.row.me .meta', { hasText: 'Seen' }).waitFor({ timeout: 10000 });
  await shot(visitor, 'widget-chat');
  await shot(agent, 'inbox-conversation');

  // The stored client ids are the clients' own and grow with time (docs/protocol.md): the
  // widget's `w-…` in the order they were sent, the inbox's `a-…`.
  const convId = Number(new URL(agent.url()).hash.split('/').pop());
  const stored = await agent.evaluate(async (id) => (await fetch(`/api/v1/conversations/${id}/messages?after=0&limit=100`)).json(), convId);
  const ids = (who) => stored.filter((m) => m.client_id && m.client_id.startsWith(who + '-')).map((m) => m.client_id);
  const vids = ids('w');
  assert.equal(vids.length, 3, JSON.stringify(stored.map((m) => m.client_id)));
  for (const id of vids) assert.match(id, /^w-[0-9a-f]{11}-[0-9a-f]{16}$/);
  assert.deepEqual([...vids].sort(), vids);
  assert.equal(ids('a').length, 1);
  assert.match(ids('a')[0], /^a-[0-9a-f]{11}-[0-9a-f]{16}$/);

  // The visitor reloads and sees the whole history.
  await visitor.reload();
  const w2 = await openWidget(visitor);
  for (const text of ['Hello from the visitor', 'Hi there! How can I help?', 'I need a quote', 'for 12 seats']) {
    await w2.locator('.bub', { hasText: text }).waitFor({ timeout: 10000 });
  }
  assert.equal(await w2.locator('.bub', { hasText: 'for 12 seats' }).count(), 1);

  // The agent closes; the visitor rates and starts a new conversation.
  await agent.getByRole('button', { name: 'Close', exact: true }).click();
  await w2.getByText('How was your chat?').waitFor({ timeout: 10000 });
  await w2.getByRole('button', { name: /Good/ }).click();
  await w2.getByLabel('Add a comment (optional)').fill('Quick and helpful');
  await w2.getByRole('button', { name: 'Send rating' }).click();
  await w2.getByText('Thanks for your feedback!').waitFor();
  await shot(visitor, 'widget-rated');
  await w2.getByRole('button', { name: 'Start a new conversation' }).click();
  await until(async () => !(await w2.locator('.bub', { hasText: 'for 12 seats' }).count()), 5000, 'fresh conversation');
  await visitorSend(w2, 'A second question');
  await agent.goto(base + '/#/inbox/unassigned');
  await agent.locator('.rows a.row', { hasText: 'A second question' }).waitFor({ timeout: 10000 });
  await shot(agent, 'inbox-unassigned');

  // Live rows follow the folder on screen (the socket's `view`): taken and left open, the
  // conversation's row in Mine still moves with the visitor's next message.
  await agent.locator('.rows a.row', { hasText: 'A second question' }).click();
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  await w2.locator('.ev', { hasText: 'Ann Agent joined' }).waitFor({ timeout: 10000 });
  await agent.goto(base + '/#/inbox/mine');
  await agent.locator('.rows a.row', { hasText: 'A second question' }).waitFor({ timeout: 10000 });
  await visitorSend(w2, 'One more detail');
  await agent.locator('.rows a.row', { hasText: 'One more detail' }).waitFor({ timeout: 10000 });

  await agentCtx.close();
  await visitorCtx.close();
  void widget;
});
