import { describe, expect, it } from 'vitest';
import { MAX_NOTIFICATIONS, markRead, mergeNotifications, unreadCount, unreadIds } from '../src/shared/notifications';
import { notification } from './fixtures';

describe('notifications (E3)', () => {
  it('merges a loaded list and live frames: each once, newest first', () => {
    let list = mergeNotifications([], [notification({ id: 2 }), notification({ id: 1 })]);
    list = mergeNotifications(list, [notification({ id: 3 })]);
    list = mergeNotifications(list, [notification({ id: 3 })]);
    expect(list.map((n) => n.id)).toEqual([3, 2, 1]);
    expect(unreadCount(list)).toBe(3);
  });
  it('marks read, and a stale unread copy does not undo it', () => {
    let list = mergeNotifications([], [notification({ id: 1, conversation_id: 7 }), notification({ id: 2, conversation_id: 8 })]);
    list = markRead(list, [1], '2026-01-01T10:00:00Z');
    expect(unreadCount(list)).toBe(1);
    list = mergeNotifications(list, [notification({ id: 1, conversation_id: 7 })]);
    expect(list.find((n) => n.id === 1)!.read_at).toBe('2026-01-01T10:00:00Z');
    expect(unreadIds(list)).toEqual([2]);
  });
  it('finds the unread ones of a conversation', () => {
    const list = [notification({ id: 3, conversation_id: 7 }), notification({ id: 2, conversation_id: 8 }), notification({ id: 1, conversation_id: 7, read_at: '2026-01-01T00:00:00Z' })];
    expect(unreadIds(list, 7)).toEqual([3]);
    expect(unreadIds(list, 9)).toEqual([]);
  });
  it('keeps at most the newest MAX_NOTIFICATIONS', () => {
    const many = Array.from({ length: MAX_NOTIFICATIONS + 5 }, (_, i) => notification({ id: i + 1 }));
    const list = mergeNotifications([], many);
    expect(list.length).toBe(MAX_NOTIFICATIONS);
    expect(list[0].id).toBe(MAX_NOTIFICATIONS + 5);
  });
});
