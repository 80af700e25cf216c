// The inbox's application state: one store, changed only by the actions below and by
// socket frames; components re-render on every change (the data is small).
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, setCsrf, setOnUnauthorized } from './api';
import { AgentSocket, type SocketState } from './socket';
import { Outbox, Timeline, applyMessage, makeClientId } from '../shared/state';
import { FOLDERS, folderOf, normalizeRow, sortRows, applyRow, type Folder, type Row, type Status } from '../shared/inbox-rules';
import { listCursor, mayHaveMore, mergePage, olderWindow, windowStart } from '../shared/paging';
import { markRead as markNotificationsRead, mergeNotifications, unreadIds } from '../shared/notifications';
import type * as wire from '../shared/wire';
import { t } from './i18n';

// The wire types come from the server's OpenAPI document (src/shared/wire.ts).
export type Agent = wire.Agent & { connected?: boolean };
export type AMsg = wire.Message;
export type AEvent = wire.Event;
export type Conversation = wire.Conversation;
export type Contact = wire.Contact;
export type Site = wire.SiteView;
export type SiteSettings = wire.SiteSettings;
export type Team = wire.Team;
export type Counts = wire.FolderCounts;
export type ContactInfo = wire.ContactDetail;
export type AppNotification = wire.Notification;
/** What GET /conversations/{id} says, kept while the conversation is open. */
export type Details = Omit<wire.ConversationDetail, 'my_read_seq'>;
export interface Filters { q: string; status: '' | Status; assignee: string; tag: string; site: string }

/** Rows per page of the conversation list, and entries per window of a history. */
export const LIST_PAGE = 50;
export const HISTORY_PAGE = 100;

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
  /** The server filled the last page: "Load more" may find older rows. */
  listMore: false,
  listMoreLoading: false,
  /** Conversations whose older history is being loaded. */
  olderLoading: new Set<number>(),
  notifications: [] as AppNotification[],
  notificationsOpen: false,
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
    const s = await api<wire.SetupStatus>('GET', '/setup');
    store.needsSetup = !!s.needs_setup;
    if (!store.needsSetup) {
      try {
        const me = await api<wire.Me>('GET', '/me');
        signedIn(me.agent, me.csrf_token);
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
  void loadNotifications();
  changed();
}

function signedOut(): void {
  socket?.stop();
  socket = null;
  store.me = null;
  setCsrf(null);
  store.rows = [];
  store.listMore = false;
  store.details.clear();
  store.timelines.clear();
  store.notifications = [];
  store.notificationsOpen = false;
  store.openId = null;
  location.hash = '#/login';
  changed();
}

export async function setup(email: string, name: string, password: string): Promise<void> {
  const r = await api<wire.Me>('POST', '/setup', { email, name, password } satisfies wire.SetupRequest);
  store.needsSetup = false;
  if (r.csrf_token && r.agent) signedIn(r.agent, r.csrf_token);
  else await login(email, password);
}

export async function login(email: string, password: string): Promise<void> {
  const r = await api<wire.Me>('POST', '/auth/login', { email, password } satisfies wire.LoginRequest);
  signedIn(r.agent, r.csrf_token);
  if ('Notification' in window && Notification.permission === 'default') void Notification.requestPermission().catch(() => undefined);
}

export async function logout(): Promise<void> {
  await api('POST', '/auth/logout', {}).catch(() => undefined);
  signedOut();
}

export async function loadDirectory(): Promise<void> {
  const [agents, sites, teams, folders] = await Promise.all([
    api<wire.TeamMember[]>('GET', '/agents').catch(() => [] as wire.TeamMember[]),
    api<Site[]>('GET', '/sites').catch(() => [] as Site[]),
    api<Team[]>('GET', '/teams').catch(() => [] as Team[]),
    api<Counts>('GET', '/folders').catch(() => null),
  ]);
  store.agents = agents.map((m) => ({ ...m.agent, connected: m.connected }));
  store.sites = sites;
  store.teams = teams;
  if (folders) store.counts = folders;
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
function listParams(): URLSearchParams {
  const p = new URLSearchParams();
  const f = store.filters;
  if (searching()) {
    if (f.q) p.set('q', f.q);
    if (f.status) p.set('status', f.status);
    if (f.assignee) p.set('assignee', f.assignee);
    if (f.tag) p.set('tag', f.tag);
    if (f.site) p.set('site', f.site);
  } else p.set('folder', store.folder);
  p.set('limit', String(LIST_PAGE));
  return p;
}

export async function loadList(): Promise<void> {
  const my = ++listSeq;
  const p = listParams();
  // Live rows for what the list shows, asked for before it is read so no change falls
  // between the two; a search may show any folder. A socket that is not open yet asks
  // when its `ready` reloads the list.
  socket?.send({ type: 'view', folders: searching() ? FOLDERS : [store.folder] });
  store.listLoading = true;
  store.listMoreLoading = false;
  store.listError = '';
  changed();
  try {
    const data = await api<wire.ConversationSummary[]>('GET', '/conversations?' + p.toString());
    if (my !== listSeq) return;
    store.rows = sortRows(data.map(normalizeRow));
    store.listMore = mayHaveMore(data.length, LIST_PAGE);
  } catch (e) {
    if (my !== listSeq) return;
    store.rows = [];
    store.listMore = false;
    store.listError = (e as Error).message;
  }
  store.listLoading = false;
  changed();
}

/** "Load more": the next page, keyed by the last row's time and id. */
export async function loadMoreList(): Promise<void> {
  const cursor = listCursor(store.rows);
  if (!cursor || store.listMoreLoading || store.listLoading) return;
  const my = listSeq;
  const p = listParams();
  p.set('before_time', cursor.before_time);
  p.set('before_id', String(cursor.before_id));
  store.listMoreLoading = true;
  changed();
  try {
    const data = await api<wire.ConversationSummary[]>('GET', '/conversations?' + p.toString());
    if (my !== listSeq) return;
    store.rows = mergePage(store.rows, data.map(normalizeRow));
    store.listMore = mayHaveMore(data.length, LIST_PAGE);
  } catch (e) {
    if (my === listSeq) toast((e as Error).message);
  } finally {
    if (my === listSeq) {
      store.listMoreLoading = false;
      changed();
    }
  }
}

// ---- a conversation -----------------------------------------------------------------------
export function timeline(id: number, after = 0): Timeline<AMsg> {
  let tl = store.timelines.get(id);
  if (!tl) {
    tl = new Timeline<AMsg>(after);
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
  let tl = store.timelines.get(id);
  if (!tl) {
    // A long history opens at its newest window; older entries load on demand.
    const d = await refreshDetails(id);
    if (store.openId !== id) return;
    tl = timeline(id, d ? windowStart(d.conversation.last_seq, HISTORY_PAGE) : 0);
  } else void refreshDetails(id);
  const live = tl;
  socket?.subscribe(id, () => live.lastSeq());
  readNotificationsOf(id);
  // Also load over HTTP, so the view fills even before the socket is back.
  try {
    const data = await api<AMsg[]>('GET', `/conversations/${id}/messages?after=${live.lastSeq()}&limit=500`);
    for (const m of data) applyMessage(live, store.outbox, m);
    changed();
  } catch {
    /* the socket subscription delivers them too */
  }
}

/** Whether a conversation's timeline starts after its first entry (older ones not loaded). */
export function hasOlder(id: number): boolean {
  const tl = store.timelines.get(id);
  return !!tl && tl.startsAfter() > 0;
}

/** Loads the window of entries just before what the timeline has. */
export async function loadOlder(id: number): Promise<void> {
  const tl = store.timelines.get(id);
  const w = tl ? olderWindow(tl.startsAfter(), HISTORY_PAGE) : null;
  if (!tl || !w || store.olderLoading.has(id)) return;
  store.olderLoading.add(id);
  changed();
  try {
    const data = await api<AMsg[]>('GET', `/conversations/${id}/messages?after=${w.after}&limit=${w.limit}`);
    tl.extendBack(w.after);
    for (const m of data) tl.add(m);
  } catch (e) {
    toast((e as Error).message);
  } finally {
    store.olderLoading.delete(id);
    changed();
  }
}

export async function refreshDetails(id: number): Promise<Details | null> {
  try {
    const { my_read_seq, ...d } = await api<wire.ConversationDetail>('GET', `/conversations/${id}`);
    store.myRead.set(id, Math.max(my_read_seq, store.myRead.get(id) ?? 0));
    store.details.set(id, d);
    store.visitorRead.set(id, Math.max(d.conversation.visitor_read_seq, store.visitorRead.get(id) ?? 0));
    changed();
    return d;
  } catch (e) {
    if (store.openId === id) toast((e as Error).message);
    return null;
  }
}

export function sendMessage(conversationId: number, body: string, kind: 'text' | 'note', mentions: number[], attachmentId: number | null = null): void {
  const p = {
    client_id: makeClientId('a', (b) => void crypto.getRandomValues(b)),
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
    const r = await api<Conversation>('POST', `/conversations/${id}/${action}`, body ?? {});
    if (r && typeof r === 'object') applySummary(r);
    await refreshDetails(id);
  });
}

// ---- frames -------------------------------------------------------------------------------
function applySummary(raw: wire.ConversationSummary | Conversation): void {
  const row = normalizeRow(raw);
  const me = store.me;
  if (!me) return;
  const prev = store.rows.find((r) => r.id === row.id);
  const merged: Row = { ...prev, ...row };
  if (searching()) {
    if (prev) store.rows = store.rows.map((r) => (r.id === row.id ? merged : r));
  } else {
    store.rows = applyRow(store.rows, merged, folderOf(me, merged) === store.folder);
  }
  const d = store.details.get(row.id);
  if (d) d.conversation = 'conversation' in raw ? raw.conversation : raw;
  changed();
}

function onFrame(f: wire.AgentServerFrame): void {
  switch (f.type) {
    case 'ready':
      store.counts = f.counts;
      // Lists and notifications may have changed while we were away.
      void loadList();
      void loadNotifications();
      break;
    case 'counts':
      store.counts = f.counts;
      break;
    case 'message':
    case 'ack': {
      const m = f.message;
      if (f.type === 'ack') store.outbox.settle(f.client_id);
      // Only timelines we hold: a new one starts at its newest window when opened.
      const tl = store.timelines.get(m.conversation_id);
      if (tl) applyMessage(tl, store.outbox, m);
      else store.outbox.settle(m.client_id);
      flushOutbox(false);
      if (m.author_kind === 'visitor') store.visitorTyping.delete(m.conversation_id);
      break;
    }
    case 'conversation':
      applySummary(f.summary);
      break;
    case 'viewers':
      store.viewers.set(f.conversation_id, { viewing: f.viewing, typing: f.typing });
      break;
    case 'typing': {
      if (f.author.kind === 'visitor') {
        const id = f.conversation_id;
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
      const id = f.conversation_id;
      const seq = f.seq;
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
      store.notifications = mergeNotifications(store.notifications, [f.notification]);
      // Already looking at it: no need to be told.
      if (store.openId === f.notification.conversation_id && document.visibilityState === 'visible') readNotificationsOf(f.notification.conversation_id);
      else notify(f.notification);
      break;
    case 'presence': {
      const id = f.agent.id;
      const a = store.agents.find((x) => x.id === id);
      if (a) {
        a.connected = f.connected;
        a.available = f.available;
      }
      if (store.me && store.me.id === id) store.me.available = f.available;
      break;
    }
    case 'removed': {
      // Deleted, or no longer visible to me (I3).
      const id = f.conversation_id;
      store.rows = store.rows.filter((r) => r.id !== id);
      store.details.delete(id);
      store.notifications = store.notifications.filter((n) => n.conversation_id !== id);
      if (store.openId === id) {
        toast(t('This conversation is no longer available to you.'), 'info');
        location.hash = `#/inbox/${store.folder}`;
      }
      break;
    }
    case 'error':
      if (f.client_id) {
        store.outbox.markError(f.client_id, f.message || f.code);
        flushOutbox(false);
      } else toast(f.message || f.code);
      break;
    case 'resync':
    case 'pong':
      return;
    default: {
      // Every frame the server can send is handled above; a new one breaks `tsc` here.
      const never: never = f;
      void never;
      return;
    }
  }
  changed();
}

// ---- notifications (E3) -------------------------------------------------------------------
export const KIND_TITLE: Record<wire.NotificationKind, string> = {
  new_unassigned: /*i18n*/ 'New conversation',
  assigned_to_me: /*i18n*/ 'A conversation was assigned to you',
  new_message_mine: /*i18n*/ 'New message',
  new_message_other: /*i18n*/ 'New message',
  mention: /*i18n*/ 'You were mentioned',
  offline_message: /*i18n*/ 'New offline message',
  missed_chat: /*i18n*/ 'Missed chat',
};

let notificationsSeq = 0;
export async function loadNotifications(): Promise<void> {
  const my = ++notificationsSeq;
  try {
    const list = await api<AppNotification[]>('GET', '/notifications');
    if (my !== notificationsSeq || !store.me) return;
    // The server's list is the truth for read marks; live ones newer than it stay.
    store.notifications = mergeNotifications(store.notifications.filter((n) => !list.length || n.id > list[0].id), list);
    changed();
  } catch {
    /* the bell stays as it was; the next `ready` tries again */
  }
}

/** Marks notifications read (all unread ones when `ids` is not given). */
export async function readNotifications(ids?: number[]): Promise<void> {
  const which = ids ?? unreadIds(store.notifications);
  if (!which.length) return;
  store.notifications = markNotificationsRead(store.notifications, which, new Date().toISOString());
  changed();
  try {
    await api('POST', '/notifications/read', { ids: which } satisfies wire.NotificationsReadRequest);
  } catch {
    void loadNotifications();
  }
}

/** Opening a conversation reads what the bell said about it. */
function readNotificationsOf(conversationId: number): void {
  const ids = unreadIds(store.notifications, conversationId);
  if (ids.length) void readNotifications(ids);
}

export function toggleNotifications(open = !store.notificationsOpen): void {
  store.notificationsOpen = open;
  changed();
}

function notify(n: AppNotification): void {
  const me = store.me;
  if (!me) return;
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
    const r = await api<wire.Agent>('PATCH', '/me', patch);
    store.me = { ...store.me!, ...(r && typeof r === 'object' && 'id' in r ? r : patch) };
    changed();
  });
}

export async function setAvailable(available: boolean): Promise<void> {
  await attempt(async () => {
    const r = await api<wire.Agent | null>('PUT', '/me/availability', { available } satisfies wire.AvailabilityRequest);
    if (store.me) store.me = { ...store.me, ...(r && typeof r === 'object' && 'id' in r ? r : {}), available };
    const a = store.agents.find((x) => x.id === store.me?.id);
    if (a) a.available = available;
    changed();
  });
}
