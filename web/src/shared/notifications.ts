// In-app notifications (E3): the bell's list and unread count. Pure logic; the inbox's state
// loads them (GET /notifications), adds live `notification` frames, and marks them read
// (POST /notifications/read).
import type { Notification } from './wire';

export const MAX_NOTIFICATIONS = 100;

/** Adds notifications (a loaded page or a live frame): each once, newest first, capped. */
export function mergeNotifications(list: readonly Notification[], incoming: readonly Notification[]): Notification[] {
  const byId = new Map<number, Notification>();
  for (const n of list) byId.set(n.id, n);
  for (const n of incoming) {
    const prev = byId.get(n.id);
    // A read mark we already have survives a stale copy of the same notification.
    byId.set(n.id, prev && prev.read_at && !n.read_at ? { ...n, read_at: prev.read_at } : n);
  }
  return [...byId.values()].sort((a, b) => b.id - a.id).slice(0, MAX_NOTIFICATIONS);
}

export function unreadCount(list: readonly Notification[]): number {
  let n = 0;
  for (const x of list) if (!x.read_at) n++;
  return n;
}

/** The unread ones among `list`, optionally only those of one conversation. */
export function unreadIds(list: readonly Notification[], conversationId?: number): number[] {
  return list.filter((n) => !n.read_at && (conversationId == null || n.conversation_id === conversationId)).map((n) => n.id);
}

/** Marks `ids` read at `at` (optimistically, before the server confirms). */
export function markRead(list: readonly Notification[], ids: readonly number[], at: string): Notification[] {
  const set = new Set(ids);
  return list.map((n) => (set.has(n.id) && !n.read_at ? { ...n, read_at: at } : n));
}
