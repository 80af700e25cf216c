// Complete wire objects for tests, typed by the generated API types (a server change to a
// shape shows up here as a type error).
import type { Conversation, ConversationSummary, Message, Notification } from '../src/shared/wire';

export function conversation(p: Partial<Conversation> & Pick<Conversation, 'id'>): Conversation {
  return {
    agent_read_seq: 0, agent_took_part: false, assignee_id: null, channel: 'web', contact_id: 1,
    created_at: '2026-01-01T00:00:00Z', last_message_at: '2026-01-01T00:00:00Z', last_seq: 0,
    last_visible_seq: 0, last_visitor_seq: 0, offline: false, site_id: 1, status: 'open', tags: [],
    visitor_read_seq: 0, ...p,
  };
}

export function summary(c: Partial<Conversation> & Pick<Conversation, 'id'>, p: Partial<Omit<ConversationSummary, 'conversation'>> = {}): ConversationSummary {
  return { conversation: conversation(c), my_read_seq: 0, unread: false, ...p };
}

export function notification(p: Partial<Notification> & Pick<Notification, 'id'>): Notification {
  return { agent_id: 1, conversation_id: 1, created_at: '2026-01-01T00:00:00Z', kind: 'new_message_mine', preview: 'hi', read_at: null, ...p };
}

export function message(p: Partial<Message> & Pick<Message, 'id' | 'seq'>): Message {
  return { author_kind: 'visitor', body: 'hi', conversation_id: 1, created_at: '2026-01-01T00:00:00Z', kind: 'text', mentions: [], ...p };
}
