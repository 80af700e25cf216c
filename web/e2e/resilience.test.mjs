// The visitor's network is cut and restored while both sides send: every message shows once,
// in order, on both sides (delivery contract: pending sends retried with the same client_id,
// resume by seq).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useLocalDist, launch, openWidget, ownerClient, shot, startServer, uiLogin, until, visitorSend, SKIP } from './helpers.mjs';

const skip = SKIP;
let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer('resilience');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const texts = (loc) => loc.evaluateAll((els) => els.map((e) => e.textContent.trim()));

test('offline and back: each message once, in order, on both sides', { skip, timeout: 120000 }, async () => {
  const base = server.url;
  const owner = await ownerClient(base, { email: 'ann@example.com', name: 'Ann Agent', password: 'correct horse battery' });
  await owner.req('PUT', '/api/v1/me/availability', { available: true });
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await useLocalDist(agentCtx, base);
  const agent = await agentCtx.newPage();
  await uiLogin(agent, base, 'ann@example.com', 'correct horse battery');
  const visitorCtx = await browser.newContext();
  await useLocalDist(visitorCtx, base);
  const visitor = await visitorCtx.newPage();
  await visitor.goto(base + '/demo');
  const w = await openWidget(visitor);
  await visitorSend(w, 'v1 before the cut');
  await agent.goto(base + '/#/inbox/unassigned');
  await agent.locator('.rows a.row', { hasText: 'v1 before the cut' }).click();
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  const composer = agent.locator('.composer textarea');
  await composer.fill('a1 before the cut');
  await composer.press('Enter');
  await w.locator('.bub', { hasText: 'a1 before the cut' }).waitFor();

  // Cut the visitor's network; both sides keep writing.
  await visitorCtx.setOffline(true);
  await w.locator('.conn:not([hidden])').waitFor({ timeout: 10000 });
  await visitorSend(w, 'v2 while offline');
  await visitorSend(w, 'v3 while offline');
  await composer.fill('a2 while visitor offline');
  await composer.press('Enter');
  await composer.fill('a3 while visitor offline');
  await composer.press('Enter');
  await agent.locator('.msgs .bubble', { hasText: 'a3 while visitor offline' }).waitFor();
  assert.equal(await w.locator('.pending').count(), 2, 'visitor messages wait as pending');
  await shot(visitor, 'widget-offline');

  // Restore it: the pending messages go out once, the missed ones come in once.
  await visitorCtx.setOffline(false);
  await until(async () => (await w.locator('.pending').count()) === 0, 20000, 'pending messages acked');
  await w.locator('.bub', { hasText: 'a3 while visitor offline' }).waitFor({ timeout: 20000 });
  await agent.locator('.msgs .bubble', { hasText: 'v3 while offline' }).waitFor({ timeout: 20000 });
  await w.locator('.conn[hidden]').waitFor({ state: 'attached' });
  await visitorSend(w, 'v4 after');
  await agent.locator('.msgs .bubble', { hasText: 'v4 after' }).waitFor({ timeout: 10000 });

  const all = ['v1 before the cut', 'a1 before the cut', 'v2 while offline', 'v3 while offline', 'a2 while visitor offline', 'a3 while visitor offline', 'v4 after'];
  const seenByVisitor = (await texts(w.locator('.list .bub'))).filter((x) => all.includes(x));
  const seenByAgent = (await texts(agent.locator('.msgs .msg:not(.note) .bubble'))).filter((x) => all.includes(x));
  for (const list of [seenByVisitor, seenByAgent]) {
    assert.equal(list.length, all.length, `every message once: ${JSON.stringify(list)}`);
    assert.equal(new Set(list).size, all.length);
    // Each side's own messages keep their order, and both sides show the same order.
    assert.deepEqual(list.filter((x) => x.startsWith('v')), all.filter((x) => x.startsWith('v')));
    assert.deepEqual(list.filter((x) => x.startsWith('a')), all.filter((x) => x.startsWith('a')));
  }
  assert.deepEqual(seenByVisitor, seenByAgent, 'both sides show the same order (by seq)');

  // And after a reload the visitor still has exactly that history.
  await visitor.reload();
  const w2 = await openWidget(visitor);
  await w2.locator('.bub', { hasText: 'v4 after' }).waitFor();
  assert.deepEqual((await texts(w2.locator('.list .bub'))).filter((x) => all.includes(x)), seenByAgent);
  await agentCtx.close();
  await visitorCtx.close();
});
