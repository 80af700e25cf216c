// Confab's embeddable chat widget (PRODUCT.md W1–W10, protocol.md "Visitor" sections).
//
// Loaded by <script async src="https://SERVER/widget.js" data-site-key="KEY">. It renders
// into a shadow root (open, so tests can reach it; the CSS is isolated either way), keeps
// the native globals it needs (captured at load time, so a page that later redefines
// fetch, JSON, WebSocket or Array.prototype methods cannot break it), and defines no global but window.Confab.
//
// Storage (localStorage) is written only once the visitor interacts (W2): the session token,
// and the pending sends that wait for their ack (retried with the same client_id).

import { CSS } from './styles';
import { widgetCatalogs } from './i18n';
import { makeT, pickLanguage } from '../shared/i18n';
import { linkify, formatBytes } from '../shared/linkify';
import { Outbox, Timeline, applyMessage, backoffDelay, lastSeenId, makeClientId, parsePending, type PendingSend } from '../shared/state';
import type {
  AttachmentInfo, ErrorBody, Identity, SessionResponse, StartRequest, VisitorContactUpdate, VisitorClientFrame, VisitorContact, VisitorConversation,
  VisitorMessage, VisitorServerFrame, WidgetConfig,
} from '../shared/wire';

// ---- natives, captured before the host page can change them -------------------------------
const W = window;
const D = document;
const _fetch: typeof fetch = W.fetch.bind(W);
const _WS: typeof WebSocket = W.WebSocket;
const _parse: typeof JSON.parse = JSON.parse;
const _stringify: typeof JSON.stringify = JSON.stringify;
const _setTimeout: typeof setTimeout = W.setTimeout.bind(W);
const _clearTimeout: typeof clearTimeout = W.clearTimeout.bind(W);
const _setInterval: typeof setInterval = W.setInterval.bind(W);
const _Promise: PromiseConstructor = W.Promise;
const _crypto: Crypto | undefined = W.crypto;
const _fill: ((b: Uint8Array<ArrayBuffer>) => void) | undefined =
  _crypto && _crypto.getRandomValues ? (b: Uint8Array<ArrayBuffer>) => void _crypto.getRandomValues(b) : undefined;
const _objectURL = URL.createObjectURL.bind(URL);
const _URL = URL;
let _ls: Storage | null = null;
try {
  _ls = W.localStorage;
} catch {
  _ls = null;
}
const _getItem = Storage.prototype.getItem;
const _setItem = Storage.prototype.setItem;
const _removeItem = Storage.prototype.removeItem;

// ---- wire types (generated from the server's OpenAPI document; types only) -----------------
type VMsg = VisitorMessage;
type VConv = VisitorConversation;
type Config = WidgetConfig;
type Contact = VisitorContact;
type Handler = (data?: unknown) => void;

// ---- where we are -------------------------------------------------------------------------
const script = (D.currentScript as HTMLScriptElement | null) || D.querySelector<HTMLScriptElement>('script[data-site-key]');
const siteKey = (script && script.getAttribute('data-site-key')) || '';
const src = script ? script.src : '';
const base = src ? src.replace(/\/widget\.js(?:[?#].*)?$/, '') : '';
const lang = pickLanguage((script && script.getAttribute('data-lang')) || (W.navigator && W.navigator.language), widgetCatalogs);
const t = makeT(widgetCatalogs, lang);
const KEY = 'confab:' + siteKey + ':';

// ---- state --------------------------------------------------------------------------------
let config: Config | null = null;
let token: string | null = lsGet('token');
let contact: Contact | null = null;
let identity: Identity | null = null;
let identified = false;
const convs: Record<string, VConv> = Object.create(null);
const timelines: Record<string, Timeline<VMsg>> = Object.create(null);
let currentId = 0;
const outbox = new Outbox(readPending());
const readSent: Record<string, number> = Object.create(null);
let isOpen = false;
let ws: WebSocket | null = null;
let wsState: 'idle' | 'connecting' | 'open' | 'closed' = 'idle';
let attempt = 0;
let gen = 0;
const sentGen: Record<string, number> = Object.create(null);
let reconnectTimer: ReturnType<typeof setTimeout> | null = null;
let pongTimer: ReturnType<typeof setTimeout> | null = null;
let agentTyping: string | null = null;
let agentTypingTimer: ReturnType<typeof setTimeout> | null = null;
let typingSent = false;
let typingTimer: ReturnType<typeof setTimeout> | null = null;
let note = '';
let rating: { value: string; done: boolean } = { value: '', done: false };
let emailSaved = '';
let ready = false;
const handlers: Record<string, Handler[]> = Object.create(null);
const blobs: Record<string, string> = Object.create(null);

// ---- small helpers ------------------------------------------------------------------------
function lsGet(k: string): string | null {
  try {
    return _ls ? _getItem.call(_ls, KEY + k) : null;
  } catch {
    return null;
  }
}
function lsSet(k: string, v: string | null): void {
  try {
    if (!_ls) return;
    if (v === null) _removeItem.call(_ls, KEY + k);
    else _setItem.call(_ls, KEY + k, v);
  } catch {
    /* storage full or blocked: the chat still works for this page */
  }
}
function readPending(): PendingSend[] {
  const raw = lsGet('pending');
  if (!raw) return [];
  try {
    return parsePending(_parse(raw));
  } catch {
    return [];
  }
}
function savePending(): void {
  if (token) lsSet('pending', outbox.size ? _stringify(outbox.all()) : null);
}
function emit(ev: string, data?: unknown): void {
  const hs = handlers[ev];
  if (!hs) return;
  for (let i = 0; i < hs.length; i++) {
    try {
      hs[i](data);
    } catch {
      /* a page's handler must not break the widget */
    }
  }
}
function cid(): string {
  return makeClientId('w', _fill);
}

type Attrs = Record<string, string | boolean | null | undefined>;
function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, attrs?: Attrs, text?: string): HTMLElementTagNameMap[K] {
  const e = D.createElement(tag);
  if (cls) e.className = cls;
  if (attrs) for (const k in attrs) {
    const v = attrs[k];
    if (v === false || v == null) continue;
    e.setAttribute(k, v === true ? '' : v);
  }
  if (text != null) e.textContent = text;
  return e;
}
function svg(path: string): SVGSVGElement {
  const s = D.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  const p = D.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', path);
  s.appendChild(p);
  return s;
}
const I_CHAT = 'M12 3C6.5 3 2 6.6 2 11c0 2.4 1.3 4.6 3.4 6.1L4.5 21l4.3-2.3c1 .2 2.1.3 3.2.3 5.5 0 10-3.6 10-8s-4.5-8-10-8z';
const I_CLOSE = 'M18.3 5.7a1 1 0 0 0-1.4 0L12 10.6 7.1 5.7a1 1 0 0 0-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 1 0 1.4 1.4l4.9-4.9 4.9 4.9a1 1 0 0 0 1.4-1.4L13.4 12l4.9-4.9a1 1 0 0 0 0-1.4z';
const I_SEND = 'M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z';
const I_CLIP = 'M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z';
const I_SMILE = 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm-3.5-9a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3zm7 0a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3zM12 17.5c2.3 0 4.3-1.5 5-3.5H7c.7 2 2.7 3.5 5 3.5z';
const EMOJI = ['😀', '😂', '😊', '😍', '🤔', '😅', '😉', '😎', '👍', '👎', '👏', '🙏', '🎉', '❤️', '🔥', '✅', '❌', '👀', '💡', '⭐', '😢', '😮', '🙌', '👋'];

function safeUrl(u: string | null | undefined): string | null {
  if (!u) return null;
  try {
    const p = new _URL(u, W.location.href);
    return p.protocol === 'http:' || p.protocol === 'https:' ? p.href : null;
  } catch {
    return null;
  }
}

/** Inserts server-sanitized HTML; links open in a new tab. */
function setRich(e: HTMLElement, html: string): void {
  e.innerHTML = html;
  const as = e.querySelectorAll('a');
  for (let i = 0; i < as.length; i++) {
    as[i].setAttribute('target', '_blank');
    as[i].setAttribute('rel', 'noopener noreferrer nofollow');
  }
}

function appendLinked(e: HTMLElement, text: string): void {
  const segs = linkify(text);
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    if (s.href) e.appendChild(el('a', '', { href: s.href, target: '_blank', rel: 'noopener noreferrer nofollow' }, s.text));
    else e.appendChild(D.createTextNode(s.text));
  }
}

// ---- HTTP ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}
async function api<R>(method: string, path: string, body?: unknown, raw?: Blob, filename?: string): Promise<R> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  let payload: BodyInit | undefined;
  if (raw) {
    payload = raw;
    headers['Content-Type'] = raw.type || 'application/octet-stream';
  } else if (body !== undefined) {
    payload = _stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  void filename;
  const res = await _fetch(base + '/api/v1/widget' + path, { method, headers, body: payload, credentials: 'omit', mode: 'cors' });
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = _parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data as Partial<ErrorBody> | null)?.error;
    throw new ApiError(res.status, (err && err.code) || 'http_' + res.status, (err && err.message) || t('error'));
  }
  return data as R;
}

// ---- DOM ----------------------------------------------------------------------------------
const host = D.createElement('confab-widget');
host.setAttribute('style', 'all:initial !important;position:fixed !important;z-index:2147483647 !important;right:0 !important;bottom:0 !important;width:0 !important;height:0 !important;display:block !important;visibility:visible !important;opacity:1 !important;transform:none !important;pointer-events:auto !important;');
const shadow = host.attachShadow({ mode: 'open' });
const style = D.createElement('style');
style.textContent = CSS;
shadow.appendChild(style);

const root = el('div', 'root', { lang });
const win = el('section', 'win', { role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': 'cf-title', hidden: true });
const hd = el('header', 'hd');
const av = el('div', 'av', { 'aria-hidden': 'true' });
const avDot = el('span', 'dot');
const who = el('div', 'who');
const title = el('h2', '', { id: 'cf-title' });
const sub = el('p');
who.append(title, sub);
const endBtn = el('button', 'txtbtn', { type: 'button' }, t('end_chat'));
const closeBtn = el('button', 'ib', { type: 'button', 'aria-label': t('close_chat') });
closeBtn.appendChild(svg(I_CLOSE));
hd.append(av, who, endBtn, closeBtn);
const conn = el('div', 'conn', { role: 'status', hidden: true });
const body = el('div', 'body');
const intro = el('div', 'intro');
const list = el('div', 'list', { role: 'log', 'aria-live': 'polite', 'aria-label': t('messages') });
list.setAttribute('style', 'display:flex;flex-direction:column;gap:6px');
const typingEl = el('div', 'typing', { 'aria-live': 'polite', hidden: true });
const after = el('div');
const drop = el('div', 'drop', { hidden: true }, t('drop_here'));
body.append(intro, list, typingEl, after);
const emo = el('div', 'emo', { role: 'dialog', 'aria-label': t('emoji'), hidden: true });
for (let i = 0; i < EMOJI.length; i++) {
  const b = el('button', '', { type: 'button', 'aria-label': EMOJI[i] }, EMOJI[i]);
  b.addEventListener('click', () => {
    insertText(EMOJI[i]);
    toggleEmoji(false);
    input.focus();
  });
  emo.appendChild(b);
}
const ft = el('footer', 'ft');
const consentLabel = el('label', 'consent', { hidden: true });
const consentBox = el('input', '', { type: 'checkbox' });
const consentText = el('span');
consentLabel.append(consentBox, consentText);
const noteEl = el('div', 'note', { role: 'alert', hidden: true });
const comp = el('form', 'comp');
const input = el('textarea', '', { rows: '1', 'aria-label': t('placeholder'), placeholder: t('placeholder') });
const emoBtn = el('button', 'ib', { type: 'button', 'aria-label': t('emoji'), 'aria-expanded': 'false' });
emoBtn.appendChild(svg(I_SMILE));
const attBtn = el('button', 'ib', { type: 'button', 'aria-label': t('attach') });
attBtn.appendChild(svg(I_CLIP));
const fileIn = el('input', '', { type: 'file', hidden: true, 'aria-hidden': 'true', tabindex: '-1' });
const sendBtn = el('button', 'ib sendb', { type: 'submit', 'aria-label': t('send') });
sendBtn.appendChild(svg(I_SEND));
comp.append(input, emoBtn, attBtn, fileIn, sendBtn);
const hint = el('div', 'hint');
ft.append(consentLabel, noteEl, comp, hint);
win.append(hd, conn, body, emo, ft, drop);
const launcher = el('button', 'launcher', { type: 'button', 'aria-label': t('open_chat'), 'aria-expanded': 'false', hidden: true });
launcher.appendChild(svg(I_CHAT));
const badge = el('span', 'badge', { hidden: true });
launcher.appendChild(badge);
root.append(win, launcher);
shadow.appendChild(root);

// ---- rendering ----------------------------------------------------------------------------
function cur(): Timeline<VMsg> | null {
  return currentId ? timelines[String(currentId)] || null : null;
}
function curConv(): VConv | null {
  return currentId ? convs[String(currentId)] || null : null;
}
function isMine(m: VMsg): boolean {
  return m.author && m.author.kind === 'visitor';
}

function fmtTime(iso: string | null | undefined, withDay: boolean): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d.getTime())) return '';
  try {
    return new Intl.DateTimeFormat(lang, withDay ? { weekday: 'short', hour: '2-digit', minute: '2-digit' } : { hour: '2-digit', minute: '2-digit' }).format(d);
  } catch {
    return d.toISOString();
  }
}

function agentInfo(): { name: string; avatar: string | null } {
  const tl = cur();
  if (tl) {
    for (let i = tl.items.length - 1; i >= 0; i--) {
      const e = tl.items[i].event;
      if (e && e.type === 'joined' && e.display_name) return { name: e.display_name, avatar: e.avatar_url || null };
    }
  }
  const c = curConv();
  if (c && c.agent) return { name: c.agent.display_name, avatar: c.agent.avatar_url || null };
  return { name: (config && config.site_name) || t('support'), avatar: null };
}

function renderHeader(): void {
  const a = agentInfo();
  title.textContent = a.name;
  av.textContent = '';
  const url = safeUrl(a.avatar);
  if (url) av.appendChild(el('img', '', { src: url, alt: '' }));
  else av.textContent = (a.name || '?').charAt(0).toUpperCase();
  const online = !!(config && config.online);
  avDot.className = online ? 'dot on' : 'dot';
  av.appendChild(avDot);
  let s = online ? t('online') : t('offline');
  if (!online && config && config.next_open) s += ' · ' + t('back_at', { time: fmtTime(config.next_open, true) });
  sub.textContent = s;
  const c = curConv();
  endBtn.hidden = !c || c.status === 'closed';
}

let introKey = '';
function renderIntro(): void {
  if (!config) return;
  const tl0 = cur();
  let mine0 = false;
  if (tl0) for (let i = 0; i < tl0.items.length; i++) if (isMine(tl0.items[i])) mine0 = true;
  const key = (tl0 && tl0.items.length ? 's' : '-') + (mine0 ? 'm' : '-') + (config.online ? 'o' : '-');
  if (key === introKey) return;
  introKey = key;
  intro.textContent = '';
  if (config.welcome_html) {
    const w = el('div', 'rich');
    setRich(w, config.welcome_html);
    intro.appendChild(w);
  }
  const tl = cur();
  const started = !!(tl && tl.items.length);
  if (!started) {
    const msg = config.online ? config.online_message_html : config.offline_message_html;
    if (msg) {
      const m = el('div', 'rich status');
      setRich(m, msg);
      intro.appendChild(m);
    }
    if (!config.online && config.next_open) intro.appendChild(el('div', 'status', {}, t('back_at', { time: fmtTime(config.next_open, true) })));
  }
  const meet = safeUrl(config.meeting_url);
  if (meet) intro.appendChild(el('a', 'meet', { href: meet, target: '_blank', rel: 'noopener noreferrer' }, t('meeting')));
  let hasMine = false;
  if (tl) for (let i = 0; i < tl.items.length; i++) if (isMine(tl.items[i])) hasMine = true;
  const priv = safeUrl(config.privacy_url);
  const terms = safeUrl(config.terms_url);
  if (!hasMine && (priv || terms)) {
    const l = el('div', 'legal');
    l.appendChild(D.createTextNode(t('legal') + ' '));
    if (priv) l.appendChild(el('a', '', { href: priv, target: '_blank', rel: 'noopener noreferrer' }, t('privacy')));
    if (priv && terms) l.appendChild(D.createTextNode(' ' + t('and') + ' '));
    if (terms) l.appendChild(el('a', '', { href: terms, target: '_blank', rel: 'noopener noreferrer' }, t('terms')));
    l.appendChild(D.createTextNode('.'));
    intro.appendChild(l);
  }
}

const nodes: Record<string, HTMLElement> = Object.create(null);
const seenEl = el('div', 'meta', {}, t('seen'));

function attachmentNode(a: AttachmentInfo): HTMLElement {
  const wrap = el('div', 'att');
  const url = base + '/api/v1/widget/attachments/' + a.id;
  if (/^image\//.test(a.content_type)) {
    const img = el('img', '', { alt: a.filename });
    wrap.appendChild(img);
    loadBlob(a.id, url).then((u) => { if (u) img.src = u; });
  } else {
    const link = el('a', 'file', { href: '#', 'aria-label': t('download', { name: a.filename }) }, '📎 ' + a.filename + ' (' + formatBytes(a.size) + ')');
    link.addEventListener('click', (e) => {
      e.preventDefault();
      loadBlob(a.id, url).then((u) => {
        if (!u) return;
        const d = el('a', '', { href: u, download: a.filename });
        shadow.appendChild(d);
        d.click();
        shadow.removeChild(d);
      });
    });
    wrap.appendChild(link);
  }
  return wrap;
}

async function loadBlob(id: number, url: string): Promise<string | null> {
  const k = String(id);
  if (blobs[k]) return blobs[k];
  try {
    const res = await _fetch(url, { headers: token ? { Authorization: 'Bearer ' + token } : {}, credentials: 'omit' });
    if (!res.ok) return null;
    blobs[k] = _objectURL(await res.blob());
    return blobs[k];
  } catch {
    return null;
  }
}

function messageNode(m: VMsg): HTMLElement {
  const e = m.event;
  if (m.kind === 'event' && e) {
    if ((e.type === 'online' || e.type === 'offline') && e.message) {
      const r = el('div', 'ev rich', { role: 'note' });
      setRich(r, e.message);
      return r;
    }
    const key = e.type === 'joined' ? 'joined' : e.type === 'closed' ? 'closed' : e.type === 'reopened' ? 'reopened' : e.type === 'ended_by_visitor' ? 'ended' : '';
    return el('div', 'ev', { role: 'note' }, key ? t(key, { name: e.type === 'joined' ? e.display_name : '' }) : e.type);
  }
  const mine = isMine(m);
  const row = el('div', 'row ' + (mine ? 'me' : 'them'));
  if (!mine) row.appendChild(el('div', 'name', {}, (m.author && m.author.name) || agentInfo().name));
  else row.appendChild(el('span', 'sr', {}, t('you') + ':'));
  const showBody = m.body && !(m.attachment && m.body === m.attachment.filename);
  if (showBody || !m.attachment) {
    const b = el('div', 'bub', { title: fmtTime(m.created_at, true) });
    if (!mine && m.html) {
      b.className = 'bub rich';
      setRich(b, m.html);
    } else {
      if (!mine) b.className = 'bub plain';
      appendLinked(b, m.body || '');
    }
    row.appendChild(b);
  }
  if (m.attachment) row.appendChild(attachmentNode(m.attachment));
  return row;
}

function pendingNode(p: PendingSend): HTMLElement {
  const row = el('div', 'row me pending');
  const b = el('div', 'bub');
  appendLinked(b, p.body);
  row.append(b, el('div', p.error ? 'meta err' : 'meta', {}, p.error ? t('not_sent', { error: p.error }) : t('sending')));
  return row;
}

function syncChildren(parent: HTMLElement, want: HTMLElement[]): void {
  let c = parent.firstChild;
  for (let i = 0; i < want.length; i++) {
    if (want[i] === c) c = c.nextSibling;
    else parent.insertBefore(want[i], c);
  }
  while (c) {
    const n = c.nextSibling;
    parent.removeChild(c);
    c = n;
  }
}

function renderList(): void {
  const nearBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 80;
  const want: HTMLElement[] = [];
  const tl = cur();
  const conv = curConv();
  if (tl) {
    for (let i = 0; i < tl.items.length; i++) {
      const m = tl.items[i];
      const k = 'm' + m.id;
      if (!nodes[k]) nodes[k] = messageNode(m);
      want[want.length] = nodes[k];
    }
  }
  const pend = outbox.all();
  for (let i = 0; i < pend.length; i++) {
    const p = pend[i];
    if (p.conversation_id !== currentId && !(p.conversation_id === 0 && currentId === 0)) continue;
    const k = 'p' + p.client_id + (p.error ? '!' : '');
    if (!nodes[k]) nodes[k] = pendingNode(p);
    want[want.length] = nodes[k];
  }
  syncChildren(list, want);
  // "Seen" under the visitor's last message the agent has read.
  const seen = tl && conv ? lastSeenId(tl.items, conv.agent_read_seq || 0, isMine) : null;
  const seenRow = seen != null ? nodes['m' + seen] : null;
  if (seenRow) seenRow.appendChild(seenEl);
  else if (seenEl.parentNode) seenEl.parentNode.removeChild(seenEl);
  // Typing indicator of the agent.
  typingEl.textContent = '';
  typingEl.hidden = !agentTyping;
  if (agentTyping) {
    const dots = el('span', 'dots', { 'aria-hidden': 'true' });
    dots.append(el('span'), el('span'), el('span'));
    typingEl.append(dots, el('span', '', {}, agentTyping === '?' ? t('someone_typing') : t('typing', { name: agentTyping })));
  }
  renderAfter();
  if (nearBottom) body.scrollTop = body.scrollHeight;
}

function renderAfter(): void {
  after.textContent = '';
  const conv = curConv();
  const tl = cur();
  if (conv && conv.status === 'closed') {
    const card = el('div', 'card');
    if (rating.done || conv.rating) card.appendChild(el('p', '', {}, t('thanks')));
    else {
      card.appendChild(el('h3', '', { id: 'cf-rate' }, t('rate_q')));
      const r = el('div', 'rate', { role: 'group', 'aria-labelledby': 'cf-rate' });
      const good = el('button', '', { type: 'button', 'aria-pressed': String(rating.value === 'good') }, '👍 ' + t('good'));
      const bad = el('button', '', { type: 'button', 'aria-pressed': String(rating.value === 'bad') }, '👎 ' + t('bad'));
      good.addEventListener('click', () => { rating.value = 'good'; renderAfter(); });
      bad.addEventListener('click', () => { rating.value = 'bad'; renderAfter(); });
      r.append(good, bad);
      const comment = el('textarea', 'in', { rows: '2', 'aria-label': t('comment'), placeholder: t('comment') });
      const submit = el('button', 'btn', { type: 'button' }, t('send_rating'));
      submit.disabled = !rating.value;
      submit.addEventListener('click', () => {
        const id = conv.id;
        api('POST', '/conversations/' + id + '/rating', comment.value.trim() ? { rating: rating.value, comment: comment.value.trim() } : { rating: rating.value })
          .then(() => { rating.done = true; renderAfter(); })
          .catch((e: ApiError) => showNote(e.message));
      });
      card.append(r, comment, submit);
    }
    const again = el('button', 'btn sec', { type: 'button' }, t('new_conv'));
    again.addEventListener('click', () => { startNew().catch((e: ApiError) => showNote(e.message)); });
    card.appendChild(again);
    after.appendChild(card);
  }
  // Offline flow (W4): ask for an email once the visitor has written.
  let wrote = false;
  if (tl) for (let i = 0; i < tl.items.length; i++) if (isMine(tl.items[i])) wrote = true;
  if (config && !config.online && wrote && conv && conv.status !== 'closed' && !(contact && contact.email)) {
    const card = el('form', 'card');
    card.appendChild(el('p', '', {}, t('leave_email')));
    const em = el('input', 'in', { type: 'email', required: true, 'aria-label': t('email'), placeholder: 'you@example.com', autocomplete: 'email' });
    card.append(em, el('button', 'btn', { type: 'submit' }, t('save')));
    card.addEventListener('submit', (e) => {
      e.preventDefault();
      api<Contact>('PATCH', '/contact', { email: em.value.trim() } satisfies VisitorContactUpdate)
        .then((c) => { contact = c || contact; emailSaved = em.value.trim(); if (contact) contact.email = emailSaved; renderAfter(); })
        .catch((er: ApiError) => showNote(er.message));
    });
    after.appendChild(card);
  } else if (emailSaved) after.appendChild(el('div', 'ev', {}, t('email_saved', { email: emailSaved })));
}

function renderFooter(): void {
  if (!config) return;
  const tl = cur();
  const needConsent = !!config.consent_text && !(tl && tl.items.length) && !currentId;
  consentLabel.hidden = !needConsent;
  consentText.textContent = config.consent_text || '';
  const locked = config.who_may_chat === 'logged_in_to_chat' && !identified;
  input.disabled = locked;
  sendBtn.disabled = locked;
  attBtn.disabled = locked;
  if (locked && !note) showNote(t('login_required'), true);
  else if (!locked && note === t('login_required')) showNote('');
  const max = config.max_attachment_bytes || 0;
  const types = config.attachment_types;
  if (max) {
    let list = '';
    if (types) for (let i = 0; i < types.length; i++) list += (i ? ', ' : '') + shortType(types[i]);
    hint.textContent = list ? t('attach_hint', { types: list, size: formatBytes(max) }) : t('attach_hint_any', { size: formatBytes(max) });
    if (types && types.length) {
      let acc = '';
      for (let i = 0; i < types.length; i++) acc += (i ? ',' : '') + types[i];
      fileIn.setAttribute('accept', acc);
    }
  }
}

/** "image/jpeg" → "JPG", "…spreadsheetml.sheet" → "XLSX": short names for the hint. */
function shortType(mime: string): string {
  const sub = mime.replace(/^.*\//, '');
  const known: Record<string, string> = { jpeg: 'JPG', plain: 'TXT', 'svg+xml': 'SVG', msword: 'DOC', 'x-zip-compressed': 'ZIP' };
  if (known[sub]) return known[sub];
  if (/wordprocessingml/.test(sub)) return 'DOCX';
  if (/spreadsheetml/.test(sub)) return 'XLSX';
  if (/presentationml/.test(sub)) return 'PPTX';
  return sub.replace(/^(x-|vnd\.)/, '').toUpperCase();
}

function renderConn(): void {
  const offline = W.navigator && W.navigator.onLine === false;
  const show = !!token && (offline || wsState === 'closed');
  conn.hidden = !show;
  conn.textContent = offline ? t('net_offline') : t('reconnecting');
}

function renderBadge(): void {
  const tl = cur();
  let n = 0;
  if (tl && !isOpen) {
    const r = readSent[String(currentId)] || 0;
    for (let i = 0; i < tl.items.length; i++) if (tl.items[i].seq > r && !isMine(tl.items[i]) && tl.items[i].kind === 'text') n++;
  }
  badge.hidden = !n;
  badge.textContent = String(n);
  launcher.setAttribute('aria-label', n ? t('open_chat') + ' – ' + t('unread', { n }) : t('open_chat'));
}

let renderQueued = false;
function render(): void {
  if (renderQueued) return;
  renderQueued = true;
  _Promise.resolve().then(() => {
    renderQueued = false;
    renderNow();
  });
}
function renderNow(): void {
  if (!config) return;
  const visible = config.visible !== false || identified;
  launcher.hidden = !visible;
  if (!visible && isOpen) close();
  renderHeader();
  renderIntro();
  renderList();
  renderFooter();
  renderConn();
  renderBadge();
  maybeRead();
}

function showNote(text: string, sticky = false): void {
  note = text;
  noteEl.textContent = text;
  noteEl.hidden = !text;
  if (!sticky) _setTimeout(() => { if (note === text) showNote(''); }, 6000);
}

// ---- open / close -------------------------------------------------------------------------
function open(): void {
  if (!config || isOpen) return;
  if (config.visible === false && !identified) return;
  isOpen = true;
  win.hidden = false;
  root.classList.add('isopen');
  launcher.setAttribute('aria-expanded', 'true');
  renderNow();
  body.scrollTop = body.scrollHeight;
  input.focus();
  emit('open');
}
function close(): void {
  if (!isOpen) return;
  isOpen = false;
  win.hidden = true;
  root.classList.remove('isopen');
  launcher.setAttribute('aria-expanded', 'false');
  toggleEmoji(false);
  launcher.focus();
  renderBadge();
  emit('close');
}
function toggleEmoji(show?: boolean): void {
  const s = show === undefined ? emo.hidden : show;
  emo.hidden = !s;
  emoBtn.setAttribute('aria-expanded', String(s));
  if (s) (emo.firstChild as HTMLElement).focus();
}
function insertText(s: string): void {
  const a = input.selectionStart ?? input.value.length;
  const b = input.selectionEnd ?? a;
  input.value = input.value.slice(0, a) + s + input.value.slice(b);
  input.selectionStart = input.selectionEnd = a + s.length;
  onInput();
}

// ---- sessions and conversations -----------------------------------------------------------
async function ensureSession(): Promise<void> {
  if (token) return;
  const body: Record<string, unknown> = { site_key: siteKey };
  if (identity) body.identity = identity;
  const r = await api<SessionResponse>('POST', '/sessions', body);
  token = r.token;
  contact = r.contact;
  if (identity) identified = true;
  lsSet('token', token);
  savePending();
  trackPage();
  connect();
}

async function ensureConversation(): Promise<number> {
  if (currentId) return currentId;
  const req: StartRequest = { url: W.location.href };
  if (config && config.consent_text) req.consent = true;
  const c = await api<VConv>('POST', '/conversations', req);
  addConv(c);
  currentId = c.id;
  subscribe(c.id);
  return c.id;
}

async function startNew(): Promise<void> {
  await ensureSession();
  const c = await api<VConv>('POST', '/conversations', { url: W.location.href } satisfies StartRequest);
  addConv(c);
  currentId = c.id;
  rating = { value: '', done: false };
  subscribe(c.id);
  renderNow();
  input.focus();
}

function addConv(c: VConv): void {
  const k = String(c.id);
  convs[k] = c;
  if (!timelines[k]) timelines[k] = new Timeline<VMsg>();
  if (readSent[k] === undefined) readSent[k] = c.visitor_read_seq || 0;
}

function trackPage(): void {
  if (!token) return;
  api('POST', '/page-views', { url: W.location.href, title: D.title || null, referrer: D.referrer || null }).catch(() => undefined);
}

// ---- sending ------------------------------------------------------------------------------
function send(text: string, attachmentId: number | null = null): void {
  const c = curConv();
  const p: PendingSend = {
    client_id: cid(),
    conversation_id: currentId,
    body: text,
    attachment_id: attachmentId,
    created_at: new Date().toISOString(),
  };
  void c;
  outbox.add(p);
  if (note && !consentLabel.hidden) showNote('');
  stopTyping();
  render();
  prepareAndFlush().catch((e: ApiError) => showNote(e.message));
}

async function prepareAndFlush(): Promise<void> {
  await ensureSession();
  const id = await ensureConversation();
  outbox.move(0, id);
  savePending();
  render();
  flush();
}

/**
 * Sends the oldest waiting message, one at a time: the next goes when this one is acked, so
 * several messages in a row keep their order even if the server commits concurrent sends
 * in any order.
 */
function flush(): void {
  if (wsState !== 'open') return;
  const p = outbox.head();
  if (p && sentGen[p.client_id] !== gen && frame({ type: 'send', conversation_id: p.conversation_id, client_id: p.client_id, body: p.body, attachment_id: p.attachment_id ?? null })) sentGen[p.client_id] = gen;
}

function submit(): void {
  const text = input.value.replace(/^\s+|\s+$/g, '');
  if (!text || !config) return;
  if (!consentLabel.hidden && !consentBox.checked) {
    showNote(t('consent_needed'));
    consentBox.focus();
    return;
  }
  input.value = '';
  autosize();
  send(text);
}

async function upload(file: File): Promise<void> {
  if (!config) return;
  const max = config.max_attachment_bytes || 0;
  if (max && file.size > max) {
    showNote(t('too_big', { size: formatBytes(max) }));
    return;
  }
  if (!consentLabel.hidden && !consentBox.checked) {
    showNote(t('consent_needed'));
    return;
  }
  try {
    await ensureSession();
    const id = await ensureConversation();
    hint.textContent = t('sending');
    const a = await api<AttachmentInfo>('POST', '/conversations/' + id + '/attachments?filename=' + encodeURIComponent(file.name), undefined, file);
    send(file.name, a.id);
  } catch (e) {
    showNote(t('upload_failed', { error: (e as Error).message }));
  } finally {
    renderFooter();
  }
}

// ---- typing and read receipts -------------------------------------------------------------
function onInput(): void {
  autosize();
  if (!currentId || wsState !== 'open') return;
  if (!typingSent && input.value) {
    typingSent = true;
    frame({ type: 'typing', conversation_id: currentId, typing: true });
  }
  if (typingTimer) _clearTimeout(typingTimer);
  typingTimer = _setTimeout(stopTyping, 3000);
}
function stopTyping(): void {
  if (typingTimer) _clearTimeout(typingTimer);
  typingTimer = null;
  if (typingSent && currentId) frame({ type: 'typing', conversation_id: currentId, typing: false });
  typingSent = false;
}
function autosize(): void {
  input.style.height = 'auto';
  input.style.height = Math.min(120, input.scrollHeight + 2) + 'px';
}
function maybeRead(): void {
  if (!isOpen || D.visibilityState !== 'visible' || wsState !== 'open') return;
  const tl = cur();
  if (!tl) return;
  const k = String(currentId);
  const seq = tl.lastSeq();
  if (seq > (readSent[k] || 0)) {
    let theirs = false;
    for (let i = 0; i < tl.items.length; i++) if (tl.items[i].seq > (readSent[k] || 0) && !isMine(tl.items[i])) theirs = true;
    readSent[k] = seq;
    if (theirs) frame({ type: 'read', conversation_id: currentId, seq });
    renderBadge();
  }
}

// ---- the socket ---------------------------------------------------------------------------
function frame(f: VisitorClientFrame): boolean {
  if (!ws || ws.readyState !== 1) return false;
  try {
    ws.send(_stringify(f));
    return true;
  } catch {
    return false;
  }
}

function resume(): Record<string, number> {
  const r: Record<string, number> = {};
  for (const k in timelines) r[k] = timelines[k].lastSeq();
  return r;
}

function subscribe(id: number): void {
  const tl = timelines[String(id)];
  frame({ type: 'subscribe', conversation_id: id, after: tl ? tl.lastSeq() : 0 });
}

function connect(): void {
  if (!token || ws) return;
  if (reconnectTimer) _clearTimeout(reconnectTimer);
  reconnectTimer = null;
  wsState = attempt ? 'closed' : 'connecting';
  const myGen = ++gen;
  let s: WebSocket;
  try {
    s = new _WS(base.replace(/^http/, 'ws') + '/api/v1/widget/ws?site_key=' + encodeURIComponent(siteKey));
  } catch {
    scheduleReconnect();
    return;
  }
  ws = s;
  s.onopen = () => {
    s.send(_stringify({ type: 'hello', token, resume: resume() }));
  };
  s.onmessage = (e) => {
    if (myGen !== gen) return;
    alive();
    let f: VisitorServerFrame;
    try {
      f = _parse(String(e.data)) as VisitorServerFrame;
    } catch {
      return;
    }
    onFrame(f);
  };
  s.onclose = (e) => {
    if (myGen !== gen) return;
    if (e.code === 4401) {
      // The token is no longer valid: start afresh at the next interaction.
      token = null;
      lsSet('token', null);
    }
    dropSocket();
  };
  s.onerror = () => undefined;
  renderConn();
}

function dropSocket(): void {
  const s = ws;
  ws = null;
  gen++;
  if (pongTimer) _clearTimeout(pongTimer);
  pongTimer = null;
  if (s) {
    s.onopen = s.onmessage = s.onclose = s.onerror = null;
    try {
      s.close();
    } catch {
      /* already closed */
    }
  }
  wsState = 'closed';
  render();
  if (token) scheduleReconnect();
}

function scheduleReconnect(): void {
  if (reconnectTimer) return;
  const delay = backoffDelay(attempt++);
  reconnectTimer = _setTimeout(() => {
    reconnectTimer = null;
    connect();
  }, delay);
}

function alive(): void {
  if (pongTimer) _clearTimeout(pongTimer);
  pongTimer = null;
}

_setInterval(() => {
  if (wsState !== 'open' || pongTimer) return;
  frame({ type: 'ping' });
  pongTimer = _setTimeout(dropSocket, 8000);
}, 20000);

function onFrame(f: VisitorServerFrame): void {
  switch (f.type) {
    case 'ready': {
      wsState = 'open';
      attempt = 0;
      if (f.contact_id && !contact) contact = { id: f.contact_id, verified: false };
      // Subscriptions the server does not know from the resume map are implied (all of the
      // visitor's conversations); flush what waits for an ack, with the same client_ids.
      flush();
      render();
      break;
    }
    case 'message':
    case 'ack': {
      const m = f.message;
      if (!m || typeof m.id !== 'number') {
        if (f.type === 'ack') outbox.settle(f.client_id);
        break;
      }
      const k = String(m.conversation_id);
      if (!timelines[k]) {
        timelines[k] = new Timeline<VMsg>();
        if (!convs[k]) convs[k] = { id: m.conversation_id, status: 'open', seq: m.seq, agent: null, agent_read_seq: 0, visitor_read_seq: 0, rating: null, created_at: m.created_at };
        if (readSent[k] === undefined) readSent[k] = 0;
      }
      const pend = f.type === 'ack' ? outbox.get(f.client_id) : m.client_id ? outbox.get(m.client_id) : undefined;
      const fresh = !timelines[k].has(m.id);
      applyMessage(timelines[k], outbox, m);
      if (f.type === 'ack') outbox.settle(f.client_id);
      // The `final` policy: a message to a closed conversation starts a new one.
      if (pend && pend.conversation_id !== m.conversation_id) {
        outbox.move(pend.conversation_id, m.conversation_id);
        if (m.conversation_id > currentId) switchTo(m.conversation_id);
      }
      if (m.conversation_id > currentId && !currentId) currentId = m.conversation_id;
      savePending();
      flush();
      if (fresh) {
        applyEvent(m);
        if (!isMine(m) && m.conversation_id === currentId && agentTyping && m.kind === 'text') agentTyping = null;
        emit('message', m);
      }
      render();
      break;
    }
    case 'error': {
      if (f.client_id) {
        outbox.markError(f.client_id, f.message || f.code);
        savePending();
        flush();
        render();
      }
      break;
    }
    case 'typing': {
      if (f.conversation_id !== currentId) break;
      const a = f.author;
      if (a && a.kind === 'visitor') break;
      agentTyping = f.typing ? (a && a.name) || '?' : null;
      if (agentTypingTimer) _clearTimeout(agentTypingTimer);
      if (agentTyping) agentTypingTimer = _setTimeout(() => { agentTyping = null; render(); }, 8000);
      render();
      break;
    }
    case 'read': {
      const c = convs[String(f.conversation_id)];
      if (c && f.seq > (c.agent_read_seq || 0)) c.agent_read_seq = f.seq;
      render();
      break;
    }
    case 'conversation': {
      const c = f.conversation;
      if (!c) break;
      const k = String(c.id);
      const old = convs[k];
      addConv(c);
      if (old && old.agent_read_seq > (c.agent_read_seq || 0)) c.agent_read_seq = old.agent_read_seq;
      if (!currentId || (c.id > currentId && c.status !== 'closed')) switchTo(c.id);
      render();
      break;
    }
    case 'resync':
      // The server could not keep up: resume from our last seqs on a fresh socket.
      attempt = 0;
      dropSocket();
      break;
    default:
      break;
  }
}

function switchTo(id: number): void {
  if (id === currentId) return;
  currentId = id;
  rating = { value: '', done: false };
  agentTyping = null;
}

function applyEvent(m: VMsg): void {
  const e = m.event;
  const c = convs[String(m.conversation_id)];
  if (!e || !c) return;
  if (e.type === 'closed' || e.type === 'ended_by_visitor') c.status = 'closed';
  else if (e.type === 'reopened') c.status = 'open';
  else if (e.type === 'joined') c.agent = { id: e.agent_id, display_name: e.display_name || '', avatar_url: e.avatar_url || null };
}

// ---- events -------------------------------------------------------------------------------
launcher.addEventListener('click', () => (isOpen ? close() : open()));
closeBtn.addEventListener('click', close);
endBtn.addEventListener('click', () => {
  const c = curConv();
  if (!c) return;
  stopTyping();
  api<VConv | null>('POST', '/conversations/' + c.id + '/end', {})
    .then((r) => {
      if (r && r.id) addConv(r);
      else c.status = 'closed';
      render();
    })
    .catch((e: ApiError) => showNote(e.message));
});
comp.addEventListener('submit', (e) => {
  e.preventDefault();
  submit();
});
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
});
input.addEventListener('input', onInput);
emoBtn.addEventListener('click', () => toggleEmoji());
attBtn.addEventListener('click', () => fileIn.click());
fileIn.addEventListener('change', () => {
  const f = fileIn.files && fileIn.files[0];
  fileIn.value = '';
  if (f) upload(f);
});
win.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    e.stopPropagation();
    if (!emo.hidden) {
      toggleEmoji(false);
      emoBtn.focus();
    } else close();
  }
});
let dragDepth = 0;
win.addEventListener('dragenter', (e) => {
  if (!e.dataTransfer || !hasFiles(e.dataTransfer)) return;
  e.preventDefault();
  dragDepth++;
  drop.hidden = false;
});
win.addEventListener('dragover', (e) => {
  if (e.dataTransfer && hasFiles(e.dataTransfer)) e.preventDefault();
});
win.addEventListener('dragleave', () => {
  if (--dragDepth <= 0) {
    dragDepth = 0;
    drop.hidden = true;
  }
});
win.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  drop.hidden = true;
  const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
  if (f) upload(f);
});
function hasFiles(dt: DataTransfer): boolean {
  const ts = dt.types;
  for (let i = 0; i < ts.length; i++) if (ts[i] === 'Files') return true;
  return false;
}
D.addEventListener('visibilitychange', () => maybeRead());
W.addEventListener('offline', () => {
  if (ws) dropSocket();
  renderConn();
});
W.addEventListener('online', () => {
  attempt = 0;
  if (reconnectTimer) _clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (!ws && token) connect();
  if (outbox.forConversation(0).length) prepareAndFlush().catch(() => undefined);
  renderConn();
});

// ---- the page's API: window.Confab --------------------------------------------------------
const Confab = {
  open,
  close,
  on(event: string, handler: Handler): void {
    if (typeof handler !== 'function') return;
    const hs = handlers[event] || (handlers[event] = []);
    hs[hs.length] = handler;
    if (event === 'ready' && ready) handler();
  },
  identify(id: Identity): Promise<unknown> {
    if (!id || !id.id || !id.hmac) return _Promise.reject(new Error('identify needs {id, hmac}'));
    identity = { id: String(id.id), hmac: String(id.hmac) } as Identity;
    if (id.name) identity.name = String(id.name);
    if (id.email) identity.email = String(id.email);
    if (!token) {
      identified = true;
      render();
      return _Promise.resolve(null);
    }
    return api<Contact>('POST', '/identify', identity).then((c) => {
      contact = c;
      identified = true;
      render();
      return c;
    });
  },
};

// ---- boot ---------------------------------------------------------------------------------
async function boot(): Promise<void> {
  const queued = (W as unknown as { Confab?: { q?: [string, unknown[]][] } }).Confab;
  try {
    Object.defineProperty(W, 'Confab', { value: Object.freeze(Confab), writable: false, configurable: false, enumerable: false });
  } catch {
    (W as unknown as { Confab: typeof Confab }).Confab = Confab;
  }
  if (!siteKey || !base) return;
  D.documentElement.appendChild(host);
  try {
    config = await api<Config>('GET', '/config?site_key=' + encodeURIComponent(siteKey));
  } catch (e) {
    // W1: refused on origins the site does not allow; show nothing.
    if (W.console) W.console.warn('[confab] widget disabled: ' + (e as Error).message);
    return;
  }
  if (token) {
    try {
      const list = await api<VConv[]>('GET', '/conversations');
      for (let i = list.length - 1; i >= 0; i--) addConv(list[i]);
      if (list.length) currentId = list[0].id;
      trackPage();
      connect();
    } catch (e) {
      if ((e as ApiError).status === 401) {
        token = null;
        lsSet('token', null);
        lsSet('pending', null);
      }
    }
  }
  renderNow();
  ready = true;
  emit('ready');
  if (queued && queued.q) {
    const q = queued.q;
    for (let i = 0; i < q.length; i++) {
      const fn = (Confab as unknown as Record<string, (...a: unknown[]) => unknown>)[q[i][0]];
      if (typeof fn === 'function') fn.apply(Confab, q[i][1]);
    }
  }
}

boot();
