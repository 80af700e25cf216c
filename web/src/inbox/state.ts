// The inbox's application state: one store, changed only by the actions below and by
// socket frames; components re-render on every change (the data is small).
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, asList, setCsrf, setOnUnauthorized } from './api';
import { AgentSocket, type Frame, type SocketState } from './socket';
import { Outbox, Timeline, applyMessage, makeClientId, type SeqEntry } from '../shared/state';
import { folderOf, normalizeRow, sortRows, applyRow, type Access, type Folder, type Role, type Row, type Status } from '../shared/inbox-rules';
import { t } from './i18n';

export interface Agent {
  id: number;
  email: string;
  name: string;
  display_name: string;
  avatar_url: string | null;
  role: Role;
  access: Access;
  available: boolean;
  notify_desktop: boolean;
  notify_sound: boolean;
  notify_all_messages?: boolean;
  deactivated: boolean;
  connected?: boolean;
}

export interface Attachment { id: number; filename: string; content_type: string; size: number }
export interface AEvent { type: string; agent_id?: number; display_name?: string; by?: number | null; until?: string; rating?: string; comment?: string | null; message?: string }
export interface AMsg extends SeqEntry {
  conversation_id: number;
  visible_seq: number | null;
  kind: 'text' | 'note' | 'event';
  author_kind: 'visitor' | 'agent' | 'bot' | 'system';
  agent_id: number | null;
  author_name: string | null;
  body: string;
  html?: string | null;
  event: AEvent | null;
  attachment: Attachment | null;
  mentions: number[];
  created_at: string;
}
export interface Conversation extends Row {
  site_id: number;
  contact_id: number;
  visitor_read_seq?: number;
  agent_read_seq?: number;
  last_seq?: number;
  rating?: string | null;
  rating_comment?: string | null;
  start_url?: string | null;
  closed_at?: string | null;
}
export interface Contact {
  id: number; site_id: number; name: string | null; email: string | null; phone: string | null;
  external_id?: string | null; verified?: boolean; consent_text?: string | null; consent_at?: string | null;
  user_agent?: string | null; ip?: string | null; location?: string | null; tags?: string[]; created_at?: string;
}
export interface Site {
  id: number; name: string; public_key: string; identity_secret?: string; settings: SiteSettings; embed_snippet?: string; created_at?: string;
}
export interface SiteSettings {
  allowed_origins: string[]; welcome_message: string; online_message: string; offline_message: string;
  wait_time_secs: number; office_hours: { timezone: string; intervals: { day: string; from: string; to: string }[] };
  reopen_policy: 'reopen' | 'final'; who_may_chat: 'anyone' | 'logged_in_to_chat' | 'logged_in_only';
  privacy_url: string | null; terms_url: string | null; consent_text: string | null; inactivity_timeout_secs: number;
  meeting_url: string | null; max_attachment_bytes: number;
}
export interface Team { id: number; name: string; members: number[] }
export interface Counts { unassigned: number; mine: number; others: number | null; snoozed: number; closed: number }
export interface Filters { q: string; status: '' | Status; assignee: string; tag: string; site: string }
export interface ContactInfo {
  contact: Contact;
  conversations: Conversation[];
  page_views: { url: string; title?: string | null; referrer?: string | null; created_at: string }[];
  notes: { id: number; agent_id: number; body: string; created_at: string }[];
}

export interface Details {
  conversation: Conversation;
  contact: Contact | null;
  reopen_policy?: 'reopen' | 'final';
  site_name?: string;
}

export const store = {
  booted: false,
  needsSetup: false,
  me: null as Agent | null,
  agents: [] as Agent[],
  sites: [] as Site[],
  teams: [] as Team[],
  counts: null as Counts | null,
  socketState: 'connecting' as SocketState,
  folder: 'unassigned' as Folder,
  filters: { q: '', status: '', assignee: '', tag: '', site: '' } as Filters,
  rows: [] as Row[],
  listLoading: false,
  listError: '',
  openId: null as number | null,
  details: new Map<number, Details>(),
  timelines: new Map<number, Timeline<AMsg>>(),
  outbox: new Outbox(),
  visitorTyping: new Map<number, number>(),
  viewers: new Map<number, { viewing: number[]; typing: number[] }>(),
  visitorRead: new Map<number, number>(),
  myRead: new Map<number, number>(),
  toast: null as { text: string; kind: 'error' | 'info' } | null,
};

// ---- change notification ------------------------------------------------------------------
const listeners = new Set<() => void>();
let queued = false;
export function changed(): void {
  if (queued) return;
  queued = true;
  queueMicrotask(() => {
    queued = false;
    for (const l of listeners) l();
  });
}
export function useStore(): typeof store {
  const [, setV] = useState(0);
  useEffect(() => {
    const l = () => setV((v) => v + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return store;
}

let toastTimer: ReturnType<typeof setTimeout> | null = null;
export function toast(text: string, kind: 'error' | 'info' = 'error'): void {
  store.toast = { text, kind };
  if (toastTimer) clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    store.toast = null;
    changed();
  }, 6000);
  changed();
}
/** Runs an action and shows the server's error message if it fails. */
export async function attempt<R>(f: () => Promise<R>): Promise<R | undefined> {
  try {
    return await f();
  } catch (e) {
    toast(e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

// ---- session ------------------------------------------------------------------------------
let socket: AgentSocket | null = null;

export async function boot(): Promise<void> {
  setOnUnauthorized(() => {
    if (store.me) signedOut();
  });
  try {
    const s = await api<{ needs_setup: boolean }>('GET', '/setup');
    store.needsSetup = !!s.needs_setup;
    if (!store.needsSetup) {
      try {
        const me = await api<Agent & { csrf_token?: string; agent?: Agent }>('GET', '/me');
        signedIn(me.agent ?? me, me.csrf_token);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) throw e;
      }
    }
  } catch (e) {
    toast((e as Error).message);
  }
  store.booted = true;
  changed();
}

function signedIn(agent: Agent, csrf: string | null | undefined): void {
  store.me = agent;
  setCsrf(csrf);
  socket?.stop();
  socket = new AgentSocket(onFrame, (s) => {
    store.socketState = s;
    if (s === 'open') flushOutbox(true);
    changed();
  }, () => signedOut());
  store.socketState = 'connecting';
  socket.start();
  void loadDirectory();
  changed();
}

function signedOut(): void {
  socket?.stop();
  socket = null;
  store.me = null;
  setCsrf(null);
  store.rows = [];
  store.details.clear();
  store.timelines.clear();
  store.openId = null;
  location.hash = '#/login';
  changed();
}

export async function setup(email: string, name: string, password: string): Promise<void> {
  const r = await api<{ agent?: Agent; csrf_token?: string } & Partial<Agent>>('POST', '/setup', { email, name, password });
  store.needsSetup = false;
  if (r.csrf_token && r.agent) signedIn(r.agent, r.csrf_token);
  else await login(email, password);
}

export async function login(email: string, password: string): Promise<void> {
  const r = await api<{ agent: Agent; csrf_token: string }>('POST', '/auth/login', { email, password });
  signedIn(r.agent, r.csrf_token);
  if ('Notification' in window && Notification.permission === 'default') void Notification.requestPermission().catch(() => undefined);
}

export async function logout(): Promise<void> {
  await api('POST', '/auth/logout', {}).catch(() => undefined);
  signedOut();
}

export async function loadDirectory(): Promise<void> {
  const [agents, sites, teams, folders] = await Promise.all([
    api('GET', '/agents').catch(() => []),
    api('GET', '/sites').catch(() => []),
    api('GET', '/teams').catch(() => []),
    api('GET', '/folders').catch(() => null),
  ]);
  // GET /agents gives team members: {agent, connected} (or plain agents).
  store.agents = asList<Agent | { agent: Agent; connected?: boolean }>(agents, 'agents').map((a) =>
    'agent' in a && a.agent ? { ...a.agent, connected: a.connected } : (a as Agent),
  );
  store.sites = asList<Site>(sites, 'sites');
  store.teams = asList<Team>(teams, 'teams');
  const f = folders as { counts?: Counts } | Counts | null;
  if (f) store.counts = ('counts' in f && f.counts ? f.counts : f) as Counts;
  changed();
}

export function agentName(id: number | null | undefined): string {
  if (id == null) return '';
  const a = store.agents.find((x) => x.id === id);
  return a ? a.display_name || a.name : t('Agent #{id}', { id });
}

export function siteOf(id: number | undefined): Site | undefined {
  return store.sites.find((s) => s.id === id);
}

// ---- lists --------------------------------------------------------------------------------
export function searching(): boolean {
  const f = store.filters;
  return !!(f.q || f.status || f.assignee || f.tag || f.site);
}

let listSeq = 0;
export async function loadList(): Promise<void> {
  const my = ++listSeq;
  const p = new URLSearchParams();
  const f = store.filters;
  if (searching()) {
    if (f.q) p.set('q', f.q);
    if (f.status) p.set('status', f.status);
    if (f.assignee) p.set('assignee', f.assignee);
    if (f.tag) p.set('tag', f.tag);
    if (f.site) p.set('site', f.site);
  } else p.set('folder', store.folder);
  p.set('limit', '100');
  store.listLoading = true;
  store.listError = '';
  changed();
  try {
    const data = await api('GET', '/conversations?' + p.toString());
    if (my !== listSeq) return;
    store.rows = sortRows(asList<unknown>(data, 'conversations').map(normalizeRow));
  } catch (e) {
    if (my !== listSeq) return;
    store.rows = [];
    store.listError = (e as Error).message;
  }
  store.listLoading = false;
  changed();
}

// ---- a conversation -----------------------------------------------------------------------
export function timeline(id: number): Timeline<AMsg> {
  let tl = store.timelines.get(id);
  if (!tl) {
    tl = new Timeline<AMsg>();
    store.timelines.set(id, tl);
  }
  return tl;
}

export async function openConversation(id: number | null): Promise<void> {
  if (store.openId === id) return;
  if (store.openId != null) socket?.unsubscribe(store.openId);
  store.openId = id;
  changed();
  if (id == null) return;
  const tl = timeline(id);
  socket?.subscribe(id, () => tl.lastSeq());
  await refreshDetails(id);
  // Also load over HTTP, so the view fills even before the socket is back.
  try {
    const data = await api('GET', `/conversations/${id}/messages?after=${tl.lastSeq()}&limit=500`);
    for (const m of asList<AMsg>(data, 'messages')) applyMessage(tl, store.outbox, normalizeMsg(m));
    changed();
  } catch {
    /* the socket subscription delivers them too */
  }
}

export async function refreshDetails(id: number): Promise<void> {
  try {
    const d = await api<{ conversation?: Conversation; contact?: Contact; tags?: string[]; reopen_policy?: 'reopen' | 'final'; site_name?: string; my_read_seq?: number } & Conversation>('GET', `/conversations/${id}`);
    const conversation = normalizeRow(d.conversation ?? d) as Conversation;
    if (d.tags && !conversation.tags) conversation.tags = d.tags;
    if (typeof d.my_read_seq === 'number') {
      conversation.my_read_seq = d.my_read_seq;
      store.myRead.set(id, Math.max(d.my_read_seq, store.myRead.get(id) ?? 0));
    }
    store.details.set(id, { conversation, contact: d.contact ?? null, reopen_policy: d.reopen_policy, site_name: d.site_name });
    if (typeof conversation.visitor_read_seq === 'number') store.visitorRead.set(id, Math.max(conversation.visitor_read_seq, store.visitorRead.get(id) ?? 0));
    changed();
  } catch (e) {
    if (store.openId === id) toast((e as Error).message);
  }
}

export function normalizeMsg(m: AMsg & { author?: { kind: string; name?: string | null } }): AMsg {
  if (!m.author_kind && m.author) {
    m.author_kind = m.author.kind as AMsg['author_kind'];
    m.author_name = m.author.name ?? null;
  }
  if (!m.mentions) m.mentions = [];
  return m;
}

export function sendMessage(conversationId: number, body: string, kind: 'text' | 'note', mentions: number[], attachmentId: number | null = null): void {
  const p = {
    client_id: makeClientId('a', () => crypto.randomUUID()),
    conversation_id: conversationId,
    body,
    kind,
    mentions,
    attachment_id: attachmentId,
    created_at: new Date().toISOString(),
  };
  store.outbox.add(p);
  changed();
  flushOutbox(false);
}

const sentOn = new Map<string, number>();
let socketGen = 0;
/** Sends the oldest waiting message; the next goes on its ack, so order is kept. */
function flushOutbox(reconnected: boolean): void {
  if (reconnected) socketGen++;
  if (!socket || store.socketState !== 'open') return;
  const p = store.outbox.head();
  if (p && sentOn.get(p.client_id) !== socketGen &&
    socket.send({ type: 'send', conversation_id: p.conversation_id, client_id: p.client_id, body: p.body, kind: p.kind ?? 'text', mentions: p.mentions ?? [], attachment_id: p.attachment_id ?? null }))
    sentOn.set(p.client_id, socketGen);
}

export function retrySend(clientId: string): void {
  const p = store.outbox.get(clientId);
  if (!p) return;
  p.error = null;
  sentOn.delete(clientId);
  changed();
  flushOutbox(false);
}

export function discardSend(clientId: string): void {
  store.outbox.settle(clientId);
  changed();
}

export function sendTyping(conversationId: number, typing: boolean, kind: 'text' | 'note'): void {
  socket?.send({ type: 'typing', conversation_id: conversationId, typing, kind });
}

export function markRead(conversationId: number): void {
  const tl = store.timelines.get(conversationId);
  if (!tl || store.socketState !== 'open') return;
  const seq = tl.lastSeq();
  if (seq <= (store.myRead.get(conversationId) ?? 0)) return;
  const row = store.rows.find((r) => r.id === conversationId);
  if (row && (row.my_read_seq ?? 0) >= seq) {
    store.myRead.set(conversationId, row.my_read_seq ?? 0);
    return;
  }
  store.myRead.set(conversationId, seq);
  socket?.send({ type: 'read', conversation_id: conversationId, seq });
  if (row) {
    row.my_read_seq = Math.max(row.my_read_seq ?? 0, seq);
    if ((row.last_visitor_seq ?? 0) <= seq) row.unread = false;
    changed();
  }
}

export async function convAction(id: number, action: 'assign' | 'close' | 'reopen' | 'snooze' | 'delete', body?: unknown): Promise<void> {
  await attempt(async () => {
    if (action === 'delete') {
      await api('DELETE', `/conversations/${id}`);
      store.rows = store.rows.filter((r) => r.id !== id);
      store.details.delete(id);
      if (store.openId === id) location.hash = `#/inbox/${store.folder}`;
      changed();
      return;
    }
    const r = await api<unknown>('POST', `/conversations/${id}/${action}`, body ?? {});
    if (r && typeof r === 'object') applySummary(r);
    await refreshDetails(id);
  });
}

// ---- frames -------------------------------------------------------------------------------
function applySummary(raw: unknown): void {
  const row = normalizeRow(raw);
  if (typeof row.id !== 'number' || !row.status) return;
  const me = store.me;
  if (!me) return;
  const prev = store.rows.find((r) => r.id === row.id);
  const merged = { ...prev, ...row } as Row;
  if (searching()) {
    if (prev) store.rows = store.rows.map((r) => (r.id === row.id ? merged : r));
  } else {
    store.rows = applyRow(store.rows, merged, folderOf(me, merged) === store.folder);
  }
  const d = store.details.get(row.id);
  if (d) d.conversation = { ...d.conversation, ...merged } as Conversation;
  changed();
}

function onFrame(f: Frame): void {
  switch (f.type) {
    case 'ready':
      if (f.counts) store.counts = f.counts as Counts;
      // Lists may have changed while we were away.
      void loadList();
      break;
    case 'counts':
      store.counts = f.counts as Counts;
      break;
    case 'message':
    case 'ack': {
      const m = f.message ? normalizeMsg(f.message as AMsg) : null;
      if (f.type === 'ack') store.outbox.settle(f.client_id as string);
      if (m) applyMessage(timeline(m.conversation_id), store.outbox, m);
      flushOutbox(false);
      if (!m) break;
      if (m.author_kind === 'visitor') store.visitorTyping.delete(m.conversation_id);
      break;
    }
    case 'conversation':
      applySummary(f.summary ?? f.conversation);
      break;
    case 'viewers':
      store.viewers.set(f.conversation_id as number, { viewing: (f.viewing as number[]) ?? [], typing: (f.typing as number[]) ?? [] });
      break;
    case 'typing': {
      const a = f.author as { kind: string } | undefined;
      if (a?.kind === 'visitor') {
        const id = f.conversation_id as number;
        if (f.typing) {
          const until = Date.now() + 8000;
          store.visitorTyping.set(id, until);
          setTimeout(() => {
            if (store.visitorTyping.get(id) === until) {
              store.visitorTyping.delete(id);
              changed();
            }
          }, 8100);
        } else store.visitorTyping.delete(id);
      }
      break;
    }
    case 'read': {
      const id = f.conversation_id as number;
      const seq = f.seq as number;
      if (f.reader === 'visitor') store.visitorRead.set(id, Math.max(seq, store.visitorRead.get(id) ?? 0));
      else if (f.reader === 'me') {
        store.myRead.set(id, Math.max(seq, store.myRead.get(id) ?? 0));
        const row = store.rows.find((r) => r.id === id);
        if (row) {
          row.my_read_seq = Math.max(row.my_read_seq ?? 0, seq);
          if ((row.last_visitor_seq ?? 0) <= row.my_read_seq) row.unread = false;
        }
      }
      break;
    }
    case 'notification':
      notify(f.notification as { kind: string; conversation_id: number; preview: string });
      break;
    case 'presence': {
      const id = (f.agent as { id?: number } | undefined)?.id ?? (f.agent_id as number);
      const a = store.agents.find((x) => x.id === id);
      if (a) {
        a.connected = !!f.connected;
        a.available = !!f.available;
      }
      if (store.me && store.me.id === id) store.me.available = !!f.available;
      break;
    }
    case 'removed': {
      // Deleted, or no longer visible to me (I3).
      const id = f.conversation_id as number;
      store.rows = store.rows.filter((r) => r.id !== id);
      store.details.delete(id);
      if (store.openId === id) {
        toast(t('This conversation is no longer available to you.'), 'info');
        location.hash = `#/inbox/${store.folder}`;
      }
      break;
    }
    case 'error':
      if (f.client_id) {
        store.outbox.markError(f.client_id as string, String(f.message ?? f.code));
        flushOutbox(false);
      } else toast(String(f.message ?? f.code));
      break;
    default:
      return;
  }
  changed();
}

// ---- notifications (E3) -------------------------------------------------------------------
const KIND_TITLE: Record<string, string> = {
  new_unassigned: /*i18n*/ 'New conversation',
  assigned_to_me: /*i18n*/ 'A conversation was assigned to you',
  new_message_mine: /*i18n*/ 'New message',
  new_message_other: /*i18n*/ 'New message',
  mention: /*i18n*/ 'You were mentioned',
  offline_message: /*i18n*/ 'New offline message',
  missed_chat: /*i18n*/ 'Missed chat',
};

function notify(n: { kind: string; conversation_id: number; preview: string }): void {
  const me = store.me;
  if (!me || !n) return;
  if (me.notify_desktop !== false && 'Notification' in window && Notification.permission === 'granted') {
    try {
      const note = new Notification(t(KIND_TITLE[n.kind] ?? 'Confab'), { body: n.preview, tag: `confab-${n.conversation_id}-${n.kind}` });
      note.onclick = () => {
        window.focus();
        location.hash = `#/inbox/${store.folder}/${n.conversation_id}`;
        note.close();
      };
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  }
  if (me.notify_sound !== false) beep();
}

let audio: AudioContext | null = null;
export function beep(): void {
  try {
    audio ??= new AudioContext();
    const o = audio.createOscillator();
    const g = audio.createGain();
    const now = audio.currentTime;
    o.type = 'sine';
    o.frequency.setValueAtTime(880, now);
    o.frequency.setValueAtTime(1175, now + 0.09);
    g.gain.setValueAtTime(0.0001, now);
    g.gain.exponentialRampToValueAtTime(0.15, now + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, now + 0.3);
    o.connect(g).connect(audio.destination);
    o.start(now);
    o.stop(now + 0.32);
  } catch {
    /* no audio */
  }
}

export async function updateMe(patch: Partial<Agent>): Promise<void> {
  await attempt(async () => {
    const r = await api<Agent>('PATCH', '/me', patch);
    store.me = { ...store.me!, ...(r && typeof r === 'object' && 'id' in r ? r : patch) };
    changed();
  });
}

export async function setAvailable(available: boolean): Promise<void> {
  await attempt(async () => {
    const r = await api<Agent | null>('PUT', '/me/availability', { available });
    if (store.me) store.me = { ...store.me, ...(r && typeof r === 'object' && 'id' in r ? r : {}), available };
    const a = store.agents.find((x) => x.id === store.me?.id);
    if (a) a.available = available;
    changed();
  });
}
