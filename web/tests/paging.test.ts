import { describe, expect, it } from 'vitest';
import { normalizeRow } from '../src/shared/inbox-rules';
import { listCursor, mayHaveMore, mergePage, olderWindow, windowStart } from '../src/shared/paging';
import { Timeline } from '../src/shared/state';
import { message, summary } from './fixtures';

const row = (id: number, at: string) => normalizeRow(summary({ id, last_message_at: at }));

describe('conversation list paging (keyset)', () => {
  it("takes the cursor from the last row's time and id", () => {
    const rows = [row(3, '2026-01-03T00:00:00Z'), row(2, '2026-01-02T00:00:00Z')];
    expect(listCursor(rows)).toEqual({ before_time: '2026-01-02T00:00:00Z', before_id: 2 });
    expect(listCursor([])).toBe(null);
  });
  it('appends an older page, keeps the newer copy of a row that moved, stays newest first', () => {
    const moved = row(5, '2026-01-09T00:00:00Z'); // updated live while the page loaded
    const rows = [moved, row(4, '2026-01-04T00:00:00Z')];
    const page = [row(5, '2026-01-03T00:00:00Z'), row(2, '2026-01-02T00:00:00Z'), row(1, '2026-01-02T00:00:00Z')];
    const merged = mergePage(rows, page);
    expect(merged.map((r) => r.id)).toEqual([5, 4, 2, 1]);
    expect(merged[0].last_message_at).toBe('2026-01-09T00:00:00Z');
  });
  it('offers more only when the page was full', () => {
    expect(mayHaveMore(50, 50)).toBe(true);
    expect(mayHaveMore(12, 50)).toBe(false);
  });
});

describe('history windows (the messages endpoint pages forward by `after`)', () => {
  it('opens a long conversation at its newest window', () => {
    expect(windowStart(250, 100)).toBe(150);
    expect(windowStart(40, 100)).toBe(0);
  });
  it('asks for the window just before the timeline', () => {
    expect(olderWindow(150, 100)).toEqual({ after: 50, limit: 100 });
    expect(olderWindow(50, 100)).toEqual({ after: 0, limit: 50 });
    expect(olderWindow(0, 100)).toBe(null);
  });
  it('puts older entries in order without moving the resume point', () => {
    const tl = new Timeline(150);
    for (let s = 151; s <= 153; s++) tl.add(message({ id: s, seq: s }));
    expect(tl.lastSeq()).toBe(153);
    expect(tl.startsAfter()).toBe(150);
    const w = olderWindow(tl.startsAfter(), 100)!;
    tl.extendBack(w.after);
    for (let s = w.after + 1; s <= w.after + w.limit; s++) tl.add(message({ id: s, seq: s }));
    expect(tl.startsAfter()).toBe(50);
    expect(tl.items[0].seq).toBe(51);
    expect(tl.items.map((m) => m.seq).every((s, i, a) => i === 0 || s === a[i - 1] + 1)).toBe(true);
    expect(tl.lastSeq()).toBe(153);
    // A live entry still extends the end; a repeat is ignored.
    expect(tl.add(message({ id: 154, seq: 154 }))).toBe(true);
    expect(tl.add(message({ id: 100, seq: 100 }))).toBe(false);
    expect(tl.lastSeq()).toBe(154);
  });
});
