// Attachments by picker and drag-and-drop (W6), and the inbox's tools: internal notes with
// @mentions (I6), the side panel (I8), tags, search (I9), snooze (I4) and site settings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useLocalDist, Client, launch, openWidget, ownerClient, shot, startServer, uiLogin, until, visitorSend, SKIP } from './helpers.mjs';

const skip = SKIP;
let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer('features');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

test('attachments, notes with mentions, side panel, tags, search, snooze, sites', { skip, timeout: 120000 }, async () => {
  const base = server.url;
  const pw = 'correct horse battery';
  const owner = await ownerClient(base, { email: 'ann@example.com', name: 'Ann Agent', password: pw });
  await owner.req('PUT', '/api/v1/me/availability', { available: true });
  await owner.req('POST', '/api/v1/agents', { email: 'bo@example.com', name: 'Bo Berg', password: pw, role: 'agent', access: 'full' });

  const visitorCtx = await browser.newContext();
  await useLocalDist(visitorCtx, base);
  const visitor = await visitorCtx.newPage();
  await visitor.goto(base + '/demo');
  const w = await openWidget(visitor);
  await visitorSend(w, 'I have a screenshot of the problem');
  await until(async () => (await w.locator('.pending').count()) === 0, 10000, 'acked');

  // Picker.
  await w.locator('input[type=file]').setInputFiles({ name: 'screen.png', mimeType: 'image/png', buffer: PNG });
  await w.locator('.att img').waitFor({ timeout: 10000 });
  // Drag and drop.
  await w.locator('.win').evaluate((win, text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'notes.txt', { type: 'text/plain' }));
    for (const type of ['dragenter', 'dragover', 'drop']) win.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, 'error log line 1\n');
  await w.locator('.file', { hasText: 'notes.txt' }).waitFor({ timeout: 10000 });

  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await useLocalDist(agentCtx, base);
  const agent = await agentCtx.newPage();
  await uiLogin(agent, base, 'ann@example.com', pw);
  await agent.goto(base + '/#/inbox/unassigned');
  await agent.locator('.rows a.row').first().click();
  await agent.locator('.att-img').waitFor({ timeout: 10000 });
  await agent.locator('.att-file', { hasText: 'notes.txt' }).waitFor();

  // An internal note with an @mention, picked from the list.
  await agent.locator('.tabs').getByRole('tab', { name: 'Internal note' }).click();
  const ta = agent.locator('.composer textarea');
  await ta.pressSequentially('Ask @B', { delay: 20 });
  await agent.locator('.mentions').getByRole('option', { name: /Bo Berg/ }).click();
  await ta.pressSequentially('to check the logs', { delay: 5 });
  assert.match(await ta.inputValue(), /@Bo Berg to check the logs/);
  await agent.getByRole('button', { name: 'Add note' }).click();
  await agent.locator('.msg.note .bubble', { hasText: 'to check the logs' }).waitFor();
  await shot(agent, 'inbox-note');

  // Side panel: name, tags, shared notes.
  await agent.locator('.side-col').getByLabel('Name').fill('Maja Svensson');
  await agent.locator('.side-col').getByLabel('Email').fill('maja@example.se');
  await agent.locator('.side-col').getByRole('button', { name: 'Save' }).click();
  await agent.locator('.conv-head h1', { hasText: 'Maja Svensson' }).waitFor({ timeout: 10000 });
  await agent.getByLabel('Add tag').fill('bug');
  await agent.getByLabel('Add tag').press('Enter');
  await agent.locator('.tag', { hasText: 'bug' }).waitFor();
  await agent.getByLabel('Add a note for your team').fill('Runs the Stockholm office.');
  await agent.locator('.note-form').getByRole('button', { name: 'Add note' }).click();
  await agent.locator('.notes li', { hasText: 'Runs the Stockholm office.' }).waitFor();
  await agent.locator('.pages a', { hasText: 'Confab demo' }).waitFor();
  await shot(agent, 'inbox-side-panel');

  // The visitor never sees the note.
  await visitor.waitForTimeout(500);
  assert.equal(await w.locator('.bub', { hasText: 'to check the logs' }).count(), 0);

  // Search (full text) and the tag filter.
  await agent.getByLabel('Search messages', { exact: true }).fill('screenshot');
  await agent.getByLabel('Search messages', { exact: true }).press('Enter');
  await agent.locator('.search-head', { hasText: 'Search results' }).waitFor();
  await agent.locator('.rows a.row', { hasText: 'Maja Svensson' }).waitFor({ timeout: 10000 });
  await agent.getByRole('button', { name: 'Clear' }).click();

  // Assign, then snooze: it moves to Snoozed.
  await agent.goto(base + '/#/inbox/unassigned');
  await agent.locator('.rows a.row', { hasText: 'Maja Svensson' }).click();
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  await agent.locator('.conv-head', { hasText: 'Assigned to Ann Agent' }).waitFor({ timeout: 10000 });
  await agent.getByRole('button', { name: 'Snooze', exact: true }).click();
  await agent.locator('.pop').getByRole('button', { name: 'Snooze' }).click();
  await agent.locator('.conv-head .pill.snoozed').waitFor({ timeout: 10000 });
  await agent.goto(base + '/#/inbox/snoozed');
  await agent.locator('.rows a.row', { hasText: 'Maja Svensson' }).waitFor({ timeout: 10000 });

  // Settings: a new site with its embed snippet.
  await agent.goto(base + '/#/settings/sites/new');
  await agent.getByLabel('Name', { exact: true }).fill('Shop');
  await agent.getByLabel('Allowed origins').fill('https://shop.example.com');
  await agent.getByRole('button', { name: 'Create site' }).click();
  await agent.locator('.snippet code', { hasText: 'data-site-key=' }).waitFor({ timeout: 10000 });
  assert.match(await agent.locator('.snippet code').textContent(), /<script async src="http:\/\/127\.0\.0\.1:\d+\/widget\.js" data-site-key="[^"]+"><\/script>/);
  await shot(agent, 'inbox-settings-site');
  await agent.goto(base + '/#/settings/agents');
  await agent.locator('.table', { hasText: 'bo@example.com' }).waitFor();
  await shot(agent, 'inbox-settings-agents');
  await agentCtx.close();
  await visitorCtx.close();
  void Client;
});
