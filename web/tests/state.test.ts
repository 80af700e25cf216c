import { describe, expect, it } from 'vitest';
import {
  Outbox, Timeline, applyMessage, backoffDelay, lastSeenId, makeClientId, parsePending, resumeMap,
  type SeqEntry,
} from '../src/shared/state';

interface Msg extends SeqEntry { body: string; mine?: boolean }
const msg = (id: number, seq: number, body = `m${seq}`, client_id: string | null = null, mine = false): Msg =>
  ({ id, seq, body, client_id, mine });

describe('Timeline ordering', () => {
  it('keeps entries ordered by seq whatever the arrival order', () => {
    const t = new Timeline<Msg>();
    for (const s of [3, 1, 5, 2, 4]) t.add(msg(100 + s, s));
    expect(t.items.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('resume point only advances over contiguous seqs', () => {
    const t = new Timeline<Msg>();
    t.add(msg(1, 1));
    t.add(msg(3, 3)); // an ack overtook message 2
    expect(t.lastSeq()).toBe(1);
    expect(t.maxSeq()).toBe(3);
    t.add(msg(2, 2));
    expect(t.lastSeq()).toBe(3);
  });

  it('starts after a given seq', () => {
    const t = new Timeline<Msg>(40);
    expect(t.lastSeq()).toBe(40);
    t.add(msg(41, 41));
    expect(t.lastSeq()).toBe(41);
  });
});

describe('dedupe', () => {
  it('keeps one copy per id (message and ack both arrive)', () => {
    const t = new Timeline<Msg>();
    expect(t.add(msg(7, 1, 'hi', 'c-1'))).toBe(true);
    expect(t.add(msg(7, 1, 'hi', 'c-1'))).toBe(false);
    expect(t.items).toHaveLength(1);
  });

  it('keeps one copy per client_id', () => {
    const t = new Timeline<Msg>();
    t.add(msg(7, 1, 'hi', 'c-1'));
    expect(t.add(msg(8, 2, 'hi', 'c-1'))).toBe(false);
    expect(t.items).toHaveLength(1);
    expect(t.hasClientId('c-1')).toBe(true);
  });

  it('replays of a whole history add nothing', () => {
    const t = new Timeline<Msg>();
    const hist = [msg(1, 1), msg(2, 2), msg(3, 3)];
    expect(t.addAll(hist)).toBe(true);
    expect(t.addAll(hist)).toBe(false);
    expect(t.items).toHaveLength(3);
  });
});

describe('pending → acked', () => {
  it('settles a pending send on ack and adds the stored message once', () => {
    const t = new Timeline<Msg>();
    const o = new Outbox();
    o.add({ client_id: 'c-1', conversation_id: 12, body: 'hello', created_at: 'x' });
    o.add({ client_id: 'c-1', conversation_id: 12, body: 'hello', created_at: 'x' });
    expect(o.size).toBe(1);
    expect(applyMessage(t, o, msg(81, 4, 'hello', 'c-1', true))).toBe(true);
    expect(o.size).toBe(0);
    // the echoed message frame after the ack changes nothing
    expect(applyMessage(t, o, msg(81, 4, 'hello', 'c-1', true))).toBe(false);
    expect(t.items).toHaveLength(1);
  });

  it('keeps the same client_id for retries, in order', () => {
    const o = new Outbox();
    o.add({ client_id: 'a', conversation_id: 1, body: '1', created_at: 'x' });
    o.add({ client_id: 'b', conversation_id: 1, body: '2', created_at: 'x' });
    o.add({ client_id: 'c', conversation_id: 2, body: '3', created_at: 'x' });
    expect(o.all().map((p) => p.client_id)).toEqual(['a', 'b', 'c']);
    expect(o.forConversation(1).map((p) => p.client_id)).toEqual(['a', 'b']);
    o.markError('b', 'too long');
    expect(o.get('b')?.error).toBe('too long');
    o.move(1, 9);
    expect(o.forConversation(9)).toHaveLength(2);
  });

  it('keeps one send in flight: the oldest sendable one', () => {
    const o = new Outbox();
    expect(o.head()).toBeUndefined();
    o.add({ client_id: 'new', conversation_id: 0, body: 'before the conversation exists', created_at: 'x' });
    o.add({ client_id: 'a', conversation_id: 1, body: '1', created_at: 'x' });
    o.add({ client_id: 'b', conversation_id: 1, body: '2', created_at: 'x' });
    expect(o.head()?.client_id).toBe('a');
    o.markError('a', 'too long');
    expect(o.head()?.client_id).toBe('b');
    o.settle('b');
    expect(o.head()).toBeUndefined();
    o.move(0, 2);
    expect(o.head()?.client_id).toBe('new');
  });

  it('restores only well-formed pending sends from storage', () => {
    const restored = parsePending([
      { client_id: 'w-1', conversation_id: 3, body: 'x', created_at: 't' },
      { client_id: 'bad id!', conversation_id: 3, body: 'x' },
      { client_id: 'w-2', conversation_id: '3', body: 'x' },
      null,
    ]);
    expect(restored.map((p) => p.client_id)).toEqual(['w-1']);
    expect(parsePending('nope')).toEqual([]);
  });

  it('makes valid client ids that grow with time and stay unique', () => {
    for (let i = 0; i < 50; i++) expect(makeClientId('w')).toMatch(/^w-[0-9a-f]{11}-[0-9a-f]{16}$/);
    const fixed = (b: Uint8Array<ArrayBuffer>) => b.set([0, 1, 2, 171, 205, 239, 15, 255]);
    expect(makeClientId('a', fixed, 1_765_000_000_123)).toBe('a-19af232b27b-000102abcdef0fff');
    // Later ids sort after earlier ones, as the server's index keeps them.
    const ids = [1, 999, 1_000, 1_765_000_000_000, 1_765_000_000_001, 40_000_000_000_000].map((t) => makeClientId('w', undefined, t));
    expect([...ids].sort()).toEqual(ids);
    // Within one millisecond the random half tells them apart.
    const same = new Set<string>();
    for (let i = 0; i < 1000; i++) same.add(makeClientId('w', (b) => void crypto.getRandomValues(b), 5));
    expect(same.size).toBe(1000);
  });
});

describe('resume map', () => {
  it('names each conversation with its last contiguous seq', () => {
    const a = new Timeline<Msg>();
    a.addAll([msg(1, 1), msg(2, 2)]);
    const b = new Timeline<Msg>();
    b.addAll([msg(10, 1), msg(12, 3)]);
    expect(resumeMap({ '12': a, '13': b, '14': new Timeline<Msg>() })).toEqual({ '12': 2, '13': 1, '14': 0 });
  });
});

describe('reconnect backoff', () => {
  it('grows exponentially and is capped near 10 s', () => {
    expect(backoffDelay(0, 1)).toBe(500);
    expect(backoffDelay(1, 1)).toBe(1000);
    expect(backoffDelay(3, 1)).toBe(4000);
    expect(backoffDelay(10, 1)).toBe(10_000);
    expect(backoffDelay(1000, 1)).toBe(10_000);
  });
  it('jitters between half and the full delay', () => {
    expect(backoffDelay(2, 0)).toBe(1000);
    expect(backoffDelay(2, 0.5)).toBe(1500);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(5);
      expect(d).toBeGreaterThanOrEqual(5000);
      expect(d).toBeLessThanOrEqual(10_000);
    }
  });
});

describe('read receipts', () => {
  it('finds the last own message the other side has read', () => {
    const items = [msg(1, 1, 'a', null, true), msg(2, 2, 'b'), msg(3, 3, 'c', null, true), msg(4, 4, 'd', null, true)];
    const mine = (m: Msg) => !!m.mine;
    expect(lastSeenId(items, 0, mine)).toBe(null);
    expect(lastSeenId(items, 2, mine)).toBe(1);
    expect(lastSeenId(items, 3, mine)).toBe(3);
    expect(lastSeenId(items, 9, mine)).toBe(4);
  });
});
