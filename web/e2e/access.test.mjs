// I3: a restricted agent does not see a colleague's conversation; a full agent does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useLocalDist, Client, demoKey, launch, ownerClient, shot, startServer, uiLogin, until, SKIP } from './helpers.mjs';

const skip = SKIP;
let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer('access');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("restricted agents do not see colleagues' conversations; full agents do", { skip, timeout: 90000 }, async () => {
  const base = server.url;
  const owner = await ownerClient(base);
  const pw = 'correct horse battery';
  await owner.req('POST', '/api/v1/agents', { email: 'rita@example.com', name: 'Rita Restricted', password: pw, role: 'agent', access: 'restricted' });
  await owner.req('POST', '/api/v1/agents', { email: 'fred@example.com', name: 'Fred Full', password: pw, role: 'agent', access: 'full' });
  const fred = new Client(base);
  const fredAgent = await fred.login('fred@example.com', pw);
  await fred.req('PUT', '/api/v1/me/availability', { available: true });

  // A visitor writes; Fred takes the conversation.
  const key = await demoKey(base);
  const v = new Client(base);
  const s = await v.req('POST', '/api/v1/widget/sessions', { site_key: key });
  v.bearer = s.token;
  const conv = await v.req('POST', '/api/v1/widget/conversations', {});
  await v.req('POST', `/api/v1/widget/conversations/${conv.id}/messages`, { client_id: 'e2e-1', body: 'Secret question for Fred' });
  await fred.req('POST', `/api/v1/conversations/${conv.id}/assign`, { assignee_id: fredAgent.id });

  // Rita (restricted) sees no Others' folder, nothing in her lists, and a 404 for the id.
  const ritaCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await useLocalDist(ritaCtx, base);
  const rita = await ritaCtx.newPage();
  await uiLogin(rita, base, 'rita@example.com', pw);
  await rita.goto(base + '/#/inbox/unassigned');
  await rita.locator('.conn.ok').waitFor();
  assert.equal(await rita.locator('[data-folder="others"]').count(), 0, "no Others' folder for restricted agents");
  await rita.locator('.rows').waitFor();
  await rita.waitForTimeout(500);
  assert.equal(await rita.locator('.rows a.row', { hasText: 'Secret question' }).count(), 0);
  await rita.goto(base + `/#/inbox/unassigned/${conv.id}`);
  await rita.locator('.toast.error').waitFor({ timeout: 5000 });
  assert.equal(await rita.locator('.msgs .bubble', { hasText: 'Secret question' }).count(), 0);
  await shot(rita, 'inbox-restricted');

  // The owner (full access) sees it in Others'.
  const ownerCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await useLocalDist(ownerCtx, base);
  const op = await ownerCtx.newPage();
  await uiLogin(op, base, 'owner@example.com', pw);
  await op.goto(base + '/#/inbox/others');
  await op.locator('.rows a.row', { hasText: 'Secret question' }).waitFor({ timeout: 10000 });

  // So does a full-access agent... once it is not his own it is in Others' too; here it is Fred's own.
  const fredCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await useLocalDist(fredCtx, base);
  const fp = await fredCtx.newPage();
  await uiLogin(fp, base, 'fred@example.com', pw);
  await fp.goto(base + '/#/inbox/mine');
  await fp.locator('.rows a.row', { hasText: 'Secret question' }).waitFor({ timeout: 10000 });

  // A second full agent sees Fred's conversation in Others'.
  await owner.req('POST', '/api/v1/agents', { email: 'fay@example.com', name: 'Fay Full', password: pw, role: 'agent', access: 'full' });
  const fayCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await useLocalDist(fayCtx, base);
  const fay = await fayCtx.newPage();
  await uiLogin(fay, base, 'fay@example.com', pw);
  await fay.goto(base + '/#/inbox/others');
  await fay.locator('.rows a.row', { hasText: 'Secret question' }).waitFor({ timeout: 10000 });
  await fay.locator('.rows a.row', { hasText: 'Secret question' }).click();
  await fay.locator('.msgs .bubble', { hasText: 'Secret question for Fred' }).waitFor();
  await until(async () => (await fay.locator('.conv-head').textContent()).includes('Fred'), 5000, 'assignee shown');
  for (const c of [ritaCtx, ownerCtx, fredCtx, fayCtx]) await c.close();
});
