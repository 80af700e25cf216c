// Paging for the inbox: the conversation list (keyset, newest first) and a conversation's
// history (windows of `after` seqs, since the messages endpoint pages forward). Pure logic.
import { sortRows, type Row } from './inbox-rules';

/** The keyset cursor for the next page: the last row's `last_message_at` and `id`. */
export function listCursor(rows: readonly Row[]): { before_time: string; before_id: number } | null {
  for (let i = rows.length - 1; i >= 0; i--) {
    const r = rows[i];
    if (r.last_message_at) return { before_time: r.last_message_at, before_id: r.id };
  }
  return null;
}

/**
 * Adds a page of older rows to a list. A row already there (moved by a live update while
 * the page was on its way) keeps its newer copy; the result stays newest first.
 */
export function mergePage(rows: readonly Row[], page: readonly Row[]): Row[] {
  const have = new Set(rows.map((r) => r.id));
  const fresh = page.filter((r) => !have.has(r.id));
  return sortRows([...rows, ...fresh]);
}

/** Whether the server may have more rows: it filled the page. */
export function mayHaveMore(pageLength: number, limit: number): boolean {
  return pageLength >= limit;
}

/** Where a freshly opened conversation's timeline starts: the newest `page` entries. */
export function windowStart(lastSeq: number, page: number): number {
  return Math.max(0, lastSeq - page);
}

/**
 * The request for the entries before a timeline that starts after `startsAfter`:
 * `GET …/messages?after=A&limit=L` returns seqs A+1 … A+L, ending where the timeline starts.
 * Null when the timeline already starts at the beginning.
 */
export function olderWindow(startsAfter: number, page: number): { after: number; limit: number } | null {
  if (startsAfter <= 0) return null;
  const after = Math.max(0, startsAfter - page);
  return { after, limit: startsAfter - after };
}
