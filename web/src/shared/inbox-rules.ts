// The inbox rules the UI needs to decide what to show (PRODUCT.md I2–I5), mirroring the
// server's domain rules. The server stays the authority: these only hide actions that
// would be refused anyway. Pure functions; no DOM.

import type { Access, Conversation, ConversationSummary, Role, Status } from './wire';

export type { Access, Role, Status };
export type Folder = 'unassigned' | 'mine' | 'others' | 'snoozed' | 'closed';
export const FOLDERS: Folder[] = ['unassigned', 'mine', 'others', 'snoozed', 'closed'];

export interface AgentLike {
  id: number;
  role: Role;
  access: Access;
  available?: boolean;
  deactivated?: boolean;
}

export interface ConvLike {
  id: number;
  status: Status;
  assignee_id?: number | null;
}

export function effectiveAccess(a: AgentLike): Access {
  return a.role === 'owner' || a.role === 'admin' ? 'full' : a.access;
}

export function canView(a: AgentLike, c: ConvLike): boolean {
  if (a.deactivated) return false;
  if (effectiveAccess(a) === 'full') return true;
  return c.assignee_id == null || c.assignee_id === a.id || c.status === 'closed';
}

export function folderOf(a: AgentLike, c: ConvLike): Folder | null {
  if (!canView(a, c)) return null;
  if (c.status === 'closed') return 'closed';
  if (c.status === 'snoozed') return 'snoozed';
  if (c.assignee_id == null) return 'unassigned';
  return c.assignee_id === a.id ? 'mine' : 'others';
}

export function canBeAssigned(a: AgentLike): boolean {
  return !!a.available && !a.deactivated;
}

function mayChangeStatus(a: AgentLike, c: ConvLike): boolean {
  return canView(a, c) && (c.assignee_id === a.id || effectiveAccess(a) === 'full');
}

export interface Actions {
  assignToMe: boolean;
  reassign: boolean;
  unassign: boolean;
  close: boolean;
  reopen: boolean;
  snooze: boolean;
  delete: boolean;
  reply: boolean;
}

/** Which actions to offer `a` on `c` under the site's reopen policy. */
export function actionsFor(a: AgentLike, c: ConvLike, reopenPolicy: 'reopen' | 'final' = 'reopen'): Actions {
  const view = canView(a, c);
  const notClosed = c.status !== 'closed';
  return {
    assignToMe: view && notClosed && c.assignee_id !== a.id && canBeAssigned(a),
    reassign: view && notClosed,
    unassign: view && notClosed && c.assignee_id != null,
    close: notClosed && mayChangeStatus(a, c),
    reopen: !notClosed && reopenPolicy === 'reopen' && mayChangeStatus(a, c),
    snooze: notClosed && mayChangeStatus(a, c),
    delete: view && a.role === 'owner',
    reply: view && notClosed,
  };
}

/**
 * A list row: a `ConversationSummary` flattened (the conversation's fields beside the
 * summary's own). Only `id`, `status` and `assignee_id` are sure to be there: a row can start
 * from a bare `Conversation` (an action's reply) before the next summary fills it in.
 */
export type Row = Pick<Conversation, 'id' | 'status'> & { assignee_id: number | null } &
  Partial<Omit<Conversation, 'id' | 'status' | 'assignee_id'>> &
  Partial<Omit<ConversationSummary, 'conversation'>>;

/** A summary (list rows, `conversation` frames) or a bare conversation, as a row. */
export function normalizeRow(raw: ConversationSummary | Conversation): Row {
  if ('conversation' in raw) {
    const { conversation, ...rest } = raw;
    return { ...conversation, ...rest, assignee_id: conversation.assignee_id ?? null };
  }
  return { ...raw, assignee_id: raw.assignee_id ?? null };
}

/** I2: a row is unread while the visitor wrote after what I have read. */
export function isUnread(r: Row): boolean {
  if (typeof r.last_visitor_seq === 'number' && typeof r.my_read_seq === 'number') return r.last_visitor_seq > r.my_read_seq;
  return !!r.unread;
}

/** Newest activity first. */
export function sortRows(rows: Row[]): Row[] {
  const key = (r: Row) => r.last_message_at || r.created_at || '';
  return rows.slice().sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : b.id - a.id));
}

/** Applies a live `conversation` frame to a folder list: update, insert or remove. */
export function applyRow(rows: Row[], row: Row, belongs: boolean): Row[] {
  const rest = rows.filter((r) => r.id !== row.id);
  return belongs ? sortRows([row, ...rest]) : rest;
}

/** Finds @mentions in a note: names typed as "@Display Name" among the known agents. */
export function mentionedIds(text: string, agents: { id: number; display_name: string; name?: string }[]): number[] {
  const ids: number[] = [];
  for (const a of agents) {
    for (const n of [a.display_name, a.name]) {
      if (n && text.includes('@' + n) && !ids.includes(a.id)) ids.push(a.id);
    }
  }
  return ids;
}
