// Client-side delivery state shared by the widget and the inbox (protocol.md, "The delivery
// contract"). Pure logic: no DOM, no timers, no network — easy to test.
//
// Invariants kept here:
// - A timeline holds each message once (deduplicated by `id` and by `client_id`) and keeps
//   them ordered by `seq`.
// - The resume point of a timeline is the highest seq such that every seq from the start of
//   the timeline up to it is present, so a reconnect asks for exactly what is missing even
//   when an `ack` for a later message overtook an earlier `message` frame.
// - A pending send keeps its `client_id` forever: retries reuse it, so the server stores it
//   once.
//
// The widget runs on hostile pages that may redefine Array.prototype methods after load, so
// this module uses plain index loops instead of push/map/filter/sort/splice.

/** The fields every timeline entry has, from either side of the protocol. */
export interface SeqEntry {
  id: number;
  seq: number;
  client_id?: string | null;
}

/** A timeline of one conversation, ordered by seq, each entry once. */
export class Timeline<M extends SeqEntry> {
  /** Ordered by seq, ascending. Treat as read-only outside this class. */
  readonly items: M[] = [];
  private ids: Record<string, true> = Object.create(null);
  private clientIds: Record<string, number> = Object.create(null);
  private watermark: number;
  private floor: number;

  /** `after` is the seq the timeline starts after (0 for a full history). */
  constructor(after = 0) {
    this.watermark = after;
    this.floor = after;
  }

  /** The seq the timeline starts after: entries up to it have not been loaded (0: none missing). */
  startsAfter(): number {
    return this.floor;
  }

  /** Older entries down to `after` are being added (paging back through a long history). */
  extendBack(after: number): void {
    if (after < this.floor) this.floor = Math.max(0, after);
  }

  has(id: number): boolean {
    return this.ids[String(id)] === true;
  }

  hasClientId(clientId: string): boolean {
    return this.clientIds[clientId] !== undefined;
  }

  /** Adds a message unless it is already there. Returns true when the timeline changed. */
  add(m: M): boolean {
    if (this.has(m.id)) return false;
    if (m.client_id && this.clientIds[m.client_id] !== undefined) return false;
    const items = this.items;
    // Find the insertion point from the end: messages almost always arrive in order.
    let i = items.length;
    while (i > 0 && items[i - 1].seq > m.seq) i--;
    for (let j = items.length; j > i; j--) items[j] = items[j - 1];
    items[i] = m;
    this.ids[String(m.id)] = true;
    if (m.client_id) this.clientIds[m.client_id] = m.id;
    this.advance();
    return true;
  }

  /** Adds several messages; returns true when any was new. */
  addAll(ms: readonly M[]): boolean {
    let changed = false;
    for (let i = 0; i < ms.length; i++) if (this.add(ms[i])) changed = true;
    return changed;
  }

  /** The seq to resume from: everything up to it is here. */
  lastSeq(): number {
    return this.watermark;
  }

  /** The highest seq present (may be past a gap). */
  maxSeq(): number {
    const n = this.items.length;
    return n ? this.items[n - 1].seq : this.watermark;
  }

  last(): M | undefined {
    return this.items[this.items.length - 1];
  }

  private advance(): void {
    const items = this.items;
    // Seqs are gap-free, so walk forward from the watermark while the next one is present.
    let i = 0;
    while (i < items.length && items[i].seq <= this.watermark) i++;
    while (i < items.length && items[i].seq === this.watermark + 1) {
      this.watermark++;
      i++;
    }
  }
}

/** A send the server has not acknowledged yet. */
export interface PendingSend {
  client_id: string;
  conversation_id: number;
  body: string;
  attachment_id?: number | null;
  /** Agent side only. */
  kind?: 'text' | 'note';
  mentions?: number[];
  created_at: string;
  /** The last error the server gave for this send, if any (shown to the person). */
  error?: string | null;
}

/** Sends waiting for their `ack`, in the order they were made. */
export class Outbox {
  private list: PendingSend[] = [];

  constructor(initial?: readonly PendingSend[]) {
    if (initial) for (let i = 0; i < initial.length; i++) this.list[this.list.length] = initial[i];
  }

  add(p: PendingSend): void {
    if (this.get(p.client_id)) return;
    this.list[this.list.length] = p;
  }

  get(clientId: string): PendingSend | undefined {
    for (let i = 0; i < this.list.length; i++) if (this.list[i].client_id === clientId) return this.list[i];
    return undefined;
  }

  /** Removes a pending send once acknowledged (or seen as a stored message). */
  settle(clientId: string | null | undefined): boolean {
    if (!clientId) return false;
    const next: PendingSend[] = [];
    let found = false;
    for (let i = 0; i < this.list.length; i++) {
      if (this.list[i].client_id === clientId) found = true;
      else next[next.length] = this.list[i];
    }
    this.list = next;
    return found;
  }

  markError(clientId: string, error: string): void {
    const p = this.get(clientId);
    if (p) p.error = error;
  }

  /** Moves pending sends of one conversation to another (the `final` policy starts a new one). */
  move(from: number, to: number): void {
    for (let i = 0; i < this.list.length; i++) if (this.list[i].conversation_id === from) this.list[i].conversation_id = to;
  }

  /**
   * The send to have in flight: the oldest that can go (has a conversation, no error).
   * Clients send one at a time and the next on its ack, so messages keep their order even
   * when a server commits concurrent sends in any order.
   */
  head(): PendingSend | undefined {
    for (let i = 0; i < this.list.length; i++) {
      const p = this.list[i];
      if (p.conversation_id && !p.error) return p;
    }
    return undefined;
  }

  all(): PendingSend[] {
    const out: PendingSend[] = [];
    for (let i = 0; i < this.list.length; i++) out[out.length] = this.list[i];
    return out;
  }

  forConversation(id: number): PendingSend[] {
    const out: PendingSend[] = [];
    for (let i = 0; i < this.list.length; i++) if (this.list[i].conversation_id === id) out[out.length] = this.list[i];
    return out;
  }

  get size(): number {
    return this.list.length;
  }
}

/** What to do with a server frame that carries a message (`message` or `ack`). */
export function applyMessage<M extends SeqEntry>(timeline: Timeline<M>, outbox: Outbox, m: M): boolean {
  const settled = outbox.settle(m.client_id);
  const added = timeline.add(m);
  return settled || added;
}

/** The `resume` map of a `hello`: conversation id → last seq the client has. */
export function resumeMap(timelines: Record<string, Timeline<SeqEntry>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key in timelines) out[key] = timelines[key].lastSeq();
  return out;
}

/** Reconnect delay after `attempt` failures (0-based): exponential, capped, with jitter. */
export function backoffDelay(attempt: number, random: number = Math.random(), baseMs = 500, capMs = 10_000): number {
  const exp = Math.min(capMs, baseMs * Math.pow(2, Math.max(0, Math.min(attempt, 20))));
  // "Equal jitter": half fixed, half random, so retries spread out but never go to zero.
  return Math.round(exp / 2 + (exp / 2) * random);
}

/**
 * A client_id (protocol.md: 1–100 of A-Za-z0-9-_.:): `<prefix>-<milliseconds since 1970 in 11
 * hex digits>-<64 random bits in 16 hex digits>`. Ids that grow with time go to the end of
 * the server's idempotency index, which is ordered by the id, so the sends of one commit
 * share a leaf of it rather than changing one each (docs/performance.md, round 18); the
 * random half keeps them unique. `fill` puts random bytes in its array (crypto.getRandomValues).
 */
export function makeClientId(prefix: string, fill?: (bytes: Uint8Array<ArrayBuffer>) => void, now: number = Date.now()): string {
  const bytes = new Uint8Array(8);
  if (fill) fill(bytes);
  else for (let i = 0; i < 8; i++) bytes[i] = Math.floor(Math.random() * 256);
  let r = '';
  for (let i = 0; i < 8; i++) r += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  let t = Math.max(0, Math.floor(now)).toString(16);
  while (t.length < 11) t = '0' + t;
  return (prefix + '-' + t + '-' + r).replace(/[^A-Za-z0-9\-_.:]/g, '').slice(0, 100);
}

/** Validates pending sends read back from storage; drops anything malformed. */
export function parsePending(raw: unknown): PendingSend[] {
  const out: PendingSend[] = [];
  if (!raw || typeof raw !== 'object' || typeof (raw as { length?: unknown }).length !== 'number') return out;
  const arr = raw as unknown[];
  for (let i = 0; i < arr.length; i++) {
    const p = arr[i] as Partial<PendingSend> | null;
    if (
      p && typeof p.client_id === 'string' && /^[A-Za-z0-9\-_.:]{1,100}$/.test(p.client_id) &&
      typeof p.conversation_id === 'number' && typeof p.body === 'string'
    ) {
      out[out.length] = {
        client_id: p.client_id,
        conversation_id: p.conversation_id,
        body: p.body,
        attachment_id: typeof p.attachment_id === 'number' ? p.attachment_id : null,
        created_at: typeof p.created_at === 'string' ? p.created_at : new Date().toISOString(),
      };
    }
  }
  return out;
}

/** Which of a visitor's messages the agent has read: the last one with seq ≤ readSeq. */
export function lastSeenId<M extends SeqEntry>(
  items: readonly M[],
  readSeq: number,
  mine: (m: M) => boolean,
  seqOf: (m: M) => number | null | undefined = (m) => m.seq,
): number | null {
  let found: number | null = null;
  for (let i = 0; i < items.length; i++) {
    const m = items[i];
    const s = seqOf(m);
    if (s == null) continue;
    if (mine(m)) {
      if (s <= readSeq) found = m.id;
      else break;
    }
  }
  return found;
}
