import { describe, expect, it } from 'vitest';
import { conversation, summary } from './fixtures';
import { actionsFor, applyRow, canView, folderOf, isUnread, mentionedIds, normalizeRow, type AgentLike, type Row } from '../src/shared/inbox-rules';

const owner: AgentLike = { id: 1, role: 'owner', access: 'restricted', available: true };
const full: AgentLike = { id: 2, role: 'agent', access: 'full', available: true };
const restricted: AgentLike = { id: 3, role: 'agent', access: 'restricted', available: false };
const conv = (status: Row['status'], assignee_id: number | null) => ({ id: 9, status, assignee_id });

describe('I2/I3 folders and visibility', () => {
  it('files conversations into folders', () => {
    expect(folderOf(full, conv('open', null))).toBe('unassigned');
    expect(folderOf(full, conv('open', 2))).toBe('mine');
    expect(folderOf(full, conv('open', 1))).toBe('others');
    expect(folderOf(full, conv('snoozed', 1))).toBe('snoozed');
    expect(folderOf(full, conv('closed', 1))).toBe('closed');
  });
  it("hides a colleague's conversation from a restricted agent", () => {
    expect(canView(restricted, conv('open', 2))).toBe(false);
    expect(folderOf(restricted, conv('snoozed', 2))).toBe(null);
    expect(canView(restricted, conv('closed', 2))).toBe(true);
    expect(canView(restricted, conv('open', null))).toBe(true);
    expect(canView(owner, conv('open', 2))).toBe(true);
  });
});

describe('I1/I4/I5 actions', () => {
  it('offers close to the assignee and full access only', () => {
    expect(actionsFor(restricted, conv('open', 3)).close).toBe(true);
    expect(actionsFor(restricted, conv('open', null)).close).toBe(false);
    expect(actionsFor(full, conv('open', 1)).close).toBe(true);
  });
  it('follows the reopen policy', () => {
    expect(actionsFor(full, conv('closed', 2), 'reopen').reopen).toBe(true);
    expect(actionsFor(full, conv('closed', 2), 'final').reopen).toBe(false);
    expect(actionsFor(full, conv('open', 2)).reopen).toBe(false);
  });
  it('lets only the owner delete and only available agents take', () => {
    expect(actionsFor(owner, conv('open', null)).delete).toBe(true);
    expect(actionsFor(full, conv('open', null)).delete).toBe(false);
    expect(actionsFor(full, conv('open', null)).assignToMe).toBe(true);
    expect(actionsFor(restricted, conv('open', null)).assignToMe).toBe(false);
  });
});

describe('rows', () => {
  it('normalizes nested and flat rows', () => {
    const r = normalizeRow(summary({ id: 4, status: 'open', assignee_id: null, last_visitor_seq: 5 }, { contact_name: 'Bo', my_read_seq: 3 }));
    expect(r.id).toBe(4);
    expect(r.contact_name).toBe('Bo');
    expect(isUnread(r)).toBe(true);
    expect(isUnread({ ...r, my_read_seq: 5 })).toBe(false);
    const flat = conversation({ id: 5, status: 'open' });
    delete flat.assignee_id;
    expect(normalizeRow(flat).assignee_id).toBe(null);
    expect('conversation' in r).toBe(false);
  });
  it('applies live updates: update in place, insert newest first, remove', () => {
    let rows: Row[] = [
      { id: 1, status: 'open', assignee_id: null, last_message_at: '2026-01-01T10:00:00Z' },
      { id: 2, status: 'open', assignee_id: null, last_message_at: '2026-01-01T09:00:00Z' },
    ];
    rows = applyRow(rows, { id: 2, status: 'open', assignee_id: null, last_message_at: '2026-01-01T11:00:00Z' }, true);
    expect(rows.map((r) => r.id)).toEqual([2, 1]);
    rows = applyRow(rows, { id: 3, status: 'open', assignee_id: null, last_message_at: '2026-01-01T08:00:00Z' }, true);
    expect(rows.map((r) => r.id)).toEqual([2, 1, 3]);
    rows = applyRow(rows, { id: 1, status: 'open', assignee_id: 7 }, false);
    expect(rows.map((r) => r.id)).toEqual([2, 3]);
  });
  it('finds @mentions', () => {
    expect(mentionedIds('hey @Ann Lee look', [{ id: 1, display_name: 'Ann Lee' }, { id: 2, display_name: 'Bo' }])).toEqual([1]);
  });
});
