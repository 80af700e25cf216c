// The inbox proper: folder lists with search, the conversation view with its composer, and
// the contact side panel (PRODUCT.md I2–I9).
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { actionsFor, canBeAssigned, isUnread, mentionedIds, normalizeRow, FOLDERS, type Folder, type Row } from '../shared/inbox-rules';
import { lastSeenId } from '../shared/state';
import { linkify, formatBytes } from '../shared/linkify';
import { api } from './api';
import {
  agentName, attempt, changed, convAction, discardSend, hasOlder, loadList, loadMoreList, loadOlder, markRead, openConversation,
  refreshDetails, retrySend, searching, sendMessage, sendTyping, siteOf, store, toast, useStore,
  type AMsg, type Contact, type ContactInfo,
} from './state';
import type * as wire from '../shared/wire';
import { t, lang } from './i18n';
import { Avatar, FOLDER_NAMES } from './shell';
import { RichText } from './rich';

const EMOJI = ['😀', '😂', '😊', '😍', '🤔', '😅', '😉', '😎', '👍', '👎', '👏', '🙏', '🎉', '❤️', '🔥', '✅', '❌', '👀', '💡', '⭐', '😢', '😮', '🙌', '👋'];

export function fmtTime(iso?: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d.getTime())) return '';
  const today = new Date().toDateString() === d.toDateString();
  return new Intl.DateTimeFormat(lang, today ? { hour: '2-digit', minute: '2-digit' } : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }).format(d);
}

function Linked(props: { text: string }) {
  return (
    <>
      {linkify(props.text).map((s, i) =>
        s.href ? <a key={i} href={s.href} target="_blank" rel="noopener noreferrer nofollow">{s.text}</a> : <span key={i}>{s.text}</span>,
      )}
    </>
  );
}

function contactLabel(r: { contact_name?: string | null; contact_email?: string | null; contact_id?: number; id: number }): string {
  return r.contact_name || r.contact_email || t('Visitor #{id}', { id: r.contact_id ?? r.id });
}

export function InboxPage(props: { route: string[] }) {
  const s = useStore();
  const folder = (FOLDERS.includes(props.route[1] as Folder) ? props.route[1] : props.route[1] === 'search' ? 'search' : 'unassigned') as Folder | 'search';
  const id = props.route[2] ? Number(props.route[2]) : null;
  useEffect(() => {
    if (folder !== 'search') {
      store.folder = folder;
      store.filters = { q: '', status: '', assignee: '', tag: '', site: '' };
    }
    void loadList();
  }, [folder]);
  useEffect(() => {
    void openConversation(id);
  }, [id]);
  return (
    <>
      <section class="list-col" aria-label={t('Conversations')}>
        <SearchBar folder={folder} />
        <ConversationList folder={folder} openId={id} />
      </section>
      <section class="conv-col" aria-label={t('Conversation')}>
        {id != null ? <ConversationView key={id} id={id} /> : <div class="empty"><p>{s.rows.length ? t('Pick a conversation') : t('No conversations here yet')}</p></div>}
      </section>
      {id != null && <SidePanel key={id} id={id} />}
    </>
  );
}

function SearchBar(props: { folder: Folder | 'search' }) {
  const s = useStore();
  const [open, setOpen] = useState(props.folder === 'search');
  const [q, setQ] = useState(s.filters.q);
  const f = s.filters;
  const apply = (patch: Partial<typeof f>) => {
    store.filters = { ...store.filters, ...patch };
    if (searching()) {
      if (!location.hash.startsWith('#/inbox/search')) location.hash = '#/inbox/search';
      else void loadList();
    } else location.hash = `#/inbox/${store.folder}`;
  };
  return (
    <div class="search">
      <form class="search-row" role="search" onSubmit={(e) => { e.preventDefault(); apply({ q: q.trim() }); }}>
        <input type="search" placeholder={t('Search messages…')} aria-label={t('Search messages')} value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        <button type="button" class={'btn ghost sm' + (open ? ' on' : '')} aria-expanded={open} onClick={() => setOpen(!open)}>{t('Filters')}</button>
      </form>
      {open && (
        <div class="filters">
          <select aria-label={t('Status')} value={f.status} onChange={(e) => apply({ status: e.currentTarget.value as typeof f.status })}>
            <option value="">{t('Any status')}</option>
            <option value="open">{t('Open')}</option>
            <option value="snoozed">{t('Snoozed')}</option>
            <option value="closed">{t('Closed')}</option>
          </select>
          <select aria-label={t('Agent')} value={f.assignee} onChange={(e) => apply({ assignee: e.currentTarget.value })}>
            <option value="">{t('Any agent')}</option>
            {s.agents.map((a) => <option key={a.id} value={String(a.id)}>{a.display_name || a.name}</option>)}
          </select>
          <select aria-label={t('Website')} value={f.site} onChange={(e) => apply({ site: e.currentTarget.value })}>
            <option value="">{t('Any website')}</option>
            {s.sites.map((x) => <option key={x.id} value={String(x.id)}>{x.name}</option>)}
          </select>
          <input aria-label={t('Tag')} placeholder={t('Tag')} value={f.tag} onChange={(e) => apply({ tag: e.currentTarget.value.trim() })} />
        </div>
      )}
      {props.folder === 'search' && (
        <div class="search-head">
          <strong>{t('Search results')}</strong>
          <button type="button" class="link" onClick={() => { setQ(''); apply({ q: '', status: '', assignee: '', tag: '', site: '' }); }}>{t('Clear')}</button>
        </div>
      )}
    </div>
  );
}

function ConversationList(props: { folder: Folder | 'search'; openId: number | null }) {
  const s = useStore();
  return (
    <div class="rows">
      <h2 class="list-title">{props.folder === 'search' ? '' : t(FOLDER_NAMES[props.folder])}</h2>
      {s.listError && <p class="error pad">{s.listError}</p>}
      {!s.listLoading && !s.rows.length && !s.listError && <p class="muted pad">{t('Nothing here.')}</p>}
      <ul role="list" aria-busy={s.listLoading}>
        {s.rows.map((r) => <ConversationRow key={r.id} row={r} folder={props.folder} active={r.id === props.openId} />)}
      </ul>
      {s.listMore && !s.listLoading && s.rows.length > 0 && (
        <div class="more">
          <button type="button" class="btn ghost sm" data-action="load-more" disabled={s.listMoreLoading} onClick={() => loadMoreList()}>
            {s.listMoreLoading ? t('Loading…') : t('Load more')}
          </button>
        </div>
      )}
    </div>
  );
}

function ConversationRow(props: { row: Row; folder: string; active: boolean }) {
  const r = props.row;
  const unread = isUnread(r);
  const lm = r.last_message;
  const who = lm ? (lm.author_kind === 'visitor' ? contactLabel(r) : lm.author_name || t('Agent')) : '';
  const preview = lm ? (lm.kind === 'note' ? '📝 ' : '') + (lm.body || '') : '';
  const site = siteOf(r.site_id);
  return (
    <li>
      <a href={`#/inbox/${props.folder}/${r.id}`} class={'row' + (props.active ? ' active' : '') + (unread ? ' unread' : '')} aria-current={props.active ? 'true' : undefined} data-conversation={r.id}>
        <Avatar name={contactLabel(r)} />
        <div class="row-main">
          <div class="row-top">
            <span class="row-name">{contactLabel(r)}</span>
            <time class="row-time">{fmtTime(r.last_message_at || lm?.created_at || r.created_at)}</time>
          </div>
          <div class="row-preview">{who && <span class="row-who">{who}: </span>}{preview}</div>
          <div class="row-meta">
            <span class="chan" title={t('Web chat')}>{r.channel === 'email' ? '✉' : '💬'} {site?.name ?? t('Web chat')}</span>
            {r.assignee_id != null && <span class="pill">{agentName(r.assignee_id)}</span>}
            {r.status !== 'open' && <span class={'pill ' + r.status}>{t(r.status === 'closed' ? 'Closed' : 'Snoozed')}</span>}
            {r.offline && <span class="pill">{t('Offline message')}</span>}
            {unread && <span class="unread-dot" aria-label={t('Unread')} />}
          </div>
        </div>
      </a>
    </li>
  );
}

// ---- the conversation ---------------------------------------------------------------------
function eventText(m: AMsg): string {
  const e = m.event;
  if (!e) return m.body;
  switch (e.type) {
    case 'joined': return e.by && e.by !== e.agent_id ? t('{by} assigned it to {name}', { by: agentName(e.by), name: e.display_name ?? '' }) : t('{name} joined', { name: e.display_name ?? '' });
    case 'unassigned': return t('Moved back to Unassigned');
    case 'closed': return e.by ? t('{name} closed the conversation', { name: agentName(e.by) }) : t('The conversation was closed');
    case 'reopened': return e.by ? t('{name} reopened the conversation', { name: agentName(e.by) }) : t('The conversation was reopened');
    case 'snoozed': return t('Snoozed until {time}', { time: fmtTime(e.until) });
    case 'woke': return t('Woke up');
    case 'ended_by_visitor': return t('The visitor ended the chat');
    case 'rated': return t('The visitor rated the chat: {rating}', { rating: e.rating === 'good' ? '👍' : '👎' }) + (e.comment ? ` “${e.comment}”` : '');
    case 'offline': return t('Offline message shown to the visitor');
    case 'online': return t('Online message shown to the visitor');
    default: return (e as { type: string }).type;
  }
}

function AttachmentView(props: { a: NonNullable<AMsg['attachment']> }) {
  const url = `/api/v1/attachments/${props.a.id}`;
  if (props.a.content_type.startsWith('image/')) return <a href={url} target="_blank" rel="noopener"><img class="att-img" src={url} alt={props.a.filename} /></a>;
  return <a class="att-file" href={url} download={props.a.filename}>📎 {props.a.filename} <span class="muted">({formatBytes(props.a.size)})</span></a>;
}

function MessageView(props: { m: AMsg; seen: boolean }) {
  const m = props.m;
  if (m.kind === 'event') return <div class="ev" data-seq={m.seq}>{eventText(m)} <time>{fmtTime(m.created_at)}</time></div>;
  const mine = m.author_kind !== 'visitor';
  const note = m.kind === 'note';
  const d = store.details.get(m.conversation_id);
  const name = m.author_kind === 'visitor' ? (d?.contact?.name || d?.contact?.email || t('Visitor')) : m.author_name || agentName(m.agent_id) || t('Bot');
  const showBody = m.body && !(m.attachment && m.body === m.attachment.filename);
  return (
    <div class={'msg ' + (mine ? 'out' : 'in') + (note ? ' note' : '')} data-seq={m.seq} data-id={m.id}>
      <div class="msg-head">{note && <strong class="note-tag">{t('Internal note')}</strong>} <span>{name}</span> <time>{fmtTime(m.created_at)}</time></div>
      {showBody && (m.author_kind !== 'visitor' && !note ? <div class="bubble rich"><RichText text={m.body} /></div> : <div class="bubble"><Linked text={m.body} /></div>)}
      {m.attachment && <AttachmentView a={m.attachment} />}
      {props.seen && <div class="seen">{t('Seen')}</div>}
    </div>
  );
}

function ConversationView(props: { id: number }) {
  const s = useStore();
  const id = props.id;
  const d = s.details.get(id);
  const row = s.rows.find((r) => r.id === id);
  const conv: Row | undefined = d ? normalizeRow(d.conversation) : row;
  // The timeline appears once openConversation knows where the newest window starts.
  const tl = s.timelines.get(id);
  const items: readonly AMsg[] = tl ? tl.items : [];
  const listRef = useRef<HTMLDivElement>(null);
  const me = s.me!;
  const visitorRead = s.visitorRead.get(id) ?? 0;
  const seenId = lastSeenId(items, visitorRead, (m) => m.kind === 'text' && m.author_kind !== 'visitor', (m) => m.visible_seq);
  const pending = s.outbox.forConversation(id);
  const viewers = s.viewers.get(id);
  const others = (viewers?.viewing ?? []).filter((x) => x !== me.id);
  const typers = (viewers?.typing ?? []).filter((x) => x !== me.id);
  const visitorTyping = s.visitorTyping.has(id);

  // Stick to the newest entry, except when older ones were put above: then keep the place.
  const first = items.length ? items[0].seq : 0;
  const lastId = items.length ? items[items.length - 1].id : 0;
  const anchor = useRef<{ first: number; height: number; top: number } | null>(null);
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    const a = anchor.current;
    if (a && first < a.first) el.scrollTop = a.top + (el.scrollHeight - a.height);
    else el.scrollTop = el.scrollHeight;
    anchor.current = null;
  }, [first, lastId, pending.length, visitorTyping]);
  const older = async () => {
    const el = listRef.current;
    anchor.current = el ? { first, height: el.scrollHeight, top: el.scrollTop } : null;
    await loadOlder(id);
  };
  useEffect(() => {
    const f = () => { if (document.visibilityState === 'visible') markRead(id); };
    f();
    document.addEventListener('visibilitychange', f);
    window.addEventListener('focus', f);
    return () => {
      document.removeEventListener('visibilitychange', f);
      window.removeEventListener('focus', f);
    };
  }, [id, tl?.lastSeq(), s.socketState]);

  if (!conv) return <div class="empty"><p class="muted">{t('Loading…')}</p></div>;
  const site = siteOf(conv.site_id);
  const acts = actionsFor(me, conv, d?.reopen_policy ?? site?.settings?.reopen_policy ?? 'reopen');
  const title = d?.contact?.name || d?.contact?.email || contactLabel(conv);
  return (
    <div class="conv">
      <header class="conv-head">
        <div class="conv-title">
          <h1>{title}</h1>
          <div class="muted small">
            <span class={'pill ' + conv.status}>{t(conv.status === 'open' ? 'Open' : conv.status === 'closed' ? 'Closed' : 'Snoozed')}</span>{' '}
            {d?.site_name ?? site?.name ?? ''} · {conv.assignee_id != null ? t('Assigned to {name}', { name: agentName(conv.assignee_id) }) : t('Unassigned')}
            {conv.status === 'snoozed' && conv.snoozed_until ? ' · ' + t('until {time}', { time: fmtTime(conv.snoozed_until) }) : ''}
          </div>
        </div>
        <Actions conv={conv} acts={acts} />
      </header>
      {(others.length > 0 || typers.length > 0) && (
        <div class="collision" role="status">
          {others.length > 0 && <span>👀 {t('{names} viewing', { names: others.map(agentName).join(', ') })}</span>}
          {typers.length > 0 && <span>✍️ {t('{names} typing a reply', { names: typers.map(agentName).join(', ') })}</span>}
        </div>
      )}
      <div class="msgs" ref={listRef} role="log" aria-live="polite" aria-label={t('Messages')}>
        {hasOlder(id) && (
          <div class="more">
            <button type="button" class="btn ghost sm" data-action="load-older" disabled={s.olderLoading.has(id)} onClick={older}>
              {s.olderLoading.has(id) ? t('Loading…') : t('Load older messages')}
            </button>
          </div>
        )}
        {items.map((m) => <MessageView key={m.id} m={m} seen={m.id === seenId} />)}
        {pending.map((p) => (
          <div key={p.client_id} class={'msg out pending' + (p.kind === 'note' ? ' note' : '')}>
            <div class="bubble"><Linked text={p.body} /></div>
            {p.error ? (
              <div class="error small">{t('Not sent: {error}', { error: p.error })} <button type="button" class="link" onClick={() => retrySend(p.client_id)}>{t('Retry')}</button> <button type="button" class="link" onClick={() => discardSend(p.client_id)}>{t('Discard')}</button></div>
            ) : <div class="muted small">{t('Sending…')}</div>}
          </div>
        ))}
      </div>
      <div class="typing-line" aria-live="polite">{visitorTyping ? <><span class="dots"><i /><i /><i /></span> {t('The visitor is typing…')}</> : null}</div>
      <Composer conv={conv} canReply={acts.reply} />
    </div>
  );
}

function Actions(props: { conv: Row; acts: ReturnType<typeof actionsFor> }) {
  const s = useStore();
  const { conv, acts } = props;
  const [snooze, setSnooze] = useState(false);
  const [until, setUntil] = useState(() => {
    const d = new Date(Date.now() + 3600_000);
    d.setSeconds(0, 0);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  });
  const me = s.me!;
  const available = s.agents.filter((a) => canBeAssigned(a) && a.id !== conv.assignee_id);
  return (
    <div class="actions">
      {acts.assignToMe && <button type="button" class="btn primary sm" onClick={() => convAction(conv.id, 'assign', { assignee_id: me.id })}>{t('Assign to me')}</button>}
      {acts.reassign && (
        <select
          class="sm"
          aria-label={t('Assign to')}
          value=""
          onChange={(e) => {
            const v = e.currentTarget.value;
            e.currentTarget.value = '';
            if (v === 'none') void convAction(conv.id, 'assign', { assignee_id: null });
            else if (v) void convAction(conv.id, 'assign', { assignee_id: Number(v) });
          }}
        >
          <option value="">{t('Assign to…')}</option>
          {available.map((a) => <option key={a.id} value={String(a.id)}>{a.display_name || a.name}{a.id === me.id ? ` (${t('me')})` : ''}</option>)}
          {acts.unassign && <option value="none">{t('Unassigned')}</option>}
        </select>
      )}
      {acts.snooze && (
        <span class="pop-wrap">
          <button type="button" class="btn ghost sm" aria-expanded={snooze} onClick={() => setSnooze(!snooze)}>{t('Snooze')}</button>
          {snooze && (
            <form class="pop" onSubmit={(e) => { e.preventDefault(); setSnooze(false); void convAction(conv.id, 'snooze', { until: new Date(until).toISOString() }); }}>
              <label class="field"><span>{t('Snooze until')}</span><input type="datetime-local" required value={until} onInput={(e) => setUntil(e.currentTarget.value)} /></label>
              <button class="btn primary sm" type="submit">{t('Snooze')}</button>
            </form>
          )}
        </span>
      )}
      {acts.close && <button type="button" class="btn ghost sm" onClick={() => convAction(conv.id, 'close')}>{t('Close')}</button>}
      {acts.reopen && <button type="button" class="btn ghost sm" onClick={() => convAction(conv.id, 'reopen')}>{t('Reopen')}</button>}
      {acts.delete && (
        <button type="button" class="btn danger sm" onClick={() => { if (confirm(t('Delete this conversation permanently? This cannot be undone.'))) void convAction(conv.id, 'delete'); }}>{t('Delete')}</button>
      )}
    </div>
  );
}

function Composer(props: { conv: Row; canReply: boolean }) {
  const s = useStore();
  const { conv } = props;
  const [mode, setMode] = useState<'text' | 'note'>(props.canReply ? 'text' : 'note');
  const [text, setText] = useState('');
  const [emoji, setEmoji] = useState(false);
  const [mention, setMention] = useState<string | null>(null);
  const [drag, setDrag] = useState(false);
  const [uploading, setUploading] = useState(false);
  const ta = useRef<HTMLTextAreaElement>(null);
  const typingTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const typing = useRef(false);
  const fileRef = useRef<HTMLInputElement>(null);
  const site = siteOf(conv.site_id);
  useEffect(() => {
    if (!props.canReply && mode === 'text') setMode('note');
  }, [props.canReply]);
  useEffect(() => () => { if (typing.current) sendTyping(conv.id, false, mode); }, []);

  const stopTyping = () => {
    if (typingTimer.current) clearTimeout(typingTimer.current);
    if (typing.current) sendTyping(conv.id, false, mode);
    typing.current = false;
  };
  const onInput = (v: string) => {
    setText(v);
    const caret = ta.current?.selectionStart ?? v.length;
    const m = mode === 'note' ? /(?:^|\s)@([^\s@]{0,20})$/.exec(v.slice(0, caret)) : null;
    setMention(m ? m[1] : null);
    if (!typing.current && v) {
      typing.current = true;
      sendTyping(conv.id, true, mode);
    }
    if (typingTimer.current) clearTimeout(typingTimer.current);
    typingTimer.current = setTimeout(stopTyping, 3000);
  };
  // Where the caret goes once an insertion has rendered. Set in a layout effect, right
  // after the render and before the next key is handled: placed later (in an animation
  // frame), keys typed straight after picking a mention landed after the caret's new place.
  const caretAt = useRef<number | null>(null);
  useLayoutEffect(() => {
    const el = ta.current;
    if (caretAt.current == null || !el) return;
    el.focus();
    el.setSelectionRange(caretAt.current, caretAt.current);
    caretAt.current = null;
  });
  const insert = (str: string, replaceMention = false) => {
    const el = ta.current;
    const caret = el?.selectionStart ?? text.length;
    let before = text.slice(0, caret);
    if (replaceMention) before = before.replace(/@([^\s@]{0,20})$/, '');
    const next = before + str + text.slice(el?.selectionEnd ?? caret);
    caretAt.current = before.length + str.length;
    setText(next);
    setMention(null);
  };
  const submit = () => {
    const body = text.trim();
    if (!body) return;
    const mentions = mode === 'note' ? mentionedIds(body, s.agents) : [];
    sendMessage(conv.id, body, mode, mentions);
    setText('');
    setMention(null);
    stopTyping();
  };
  const upload = async (file: File) => {
    setUploading(true);
    await attempt(async () => {
      const a = await api<wire.Attachment>('POST', `/conversations/${conv.id}/attachments?filename=${encodeURIComponent(file.name)}`, undefined, file);
      sendMessage(conv.id, file.name, mode, [], a.id);
    });
    setUploading(false);
  };
  const candidates = mention != null ? s.agents.filter((a) => !a.deactivated && (a.display_name || a.name).toLowerCase().includes(mention.toLowerCase())).slice(0, 6) : [];
  return (
    <form
      class={'composer ' + mode + (drag ? ' drag' : '')}
      onSubmit={(e) => { e.preventDefault(); submit(); }}
      onDragOver={(e) => { if (e.dataTransfer?.types.includes('Files')) { e.preventDefault(); setDrag(true); } }}
      onDragLeave={() => setDrag(false)}
      onDrop={(e) => { e.preventDefault(); setDrag(false); const f = e.dataTransfer?.files[0]; if (f) void upload(f); }}
    >
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={mode === 'text'} disabled={!props.canReply} onClick={() => setMode('text')}>{t('Reply')}</button>
        <button type="button" role="tab" aria-selected={mode === 'note'} onClick={() => setMode('note')}>{t('Internal note')}</button>
      </div>
      {candidates.length > 0 && (
        <ul class="mentions" role="listbox" aria-label={t('Mention a teammate')}>
          {candidates.map((a) => (
            <li key={a.id}><button type="button" role="option" aria-selected="false" onClick={() => insert('@' + (a.display_name || a.name) + ' ', true)}><Avatar name={a.display_name} url={a.avatar_url} size={20} /> {a.display_name || a.name}</button></li>
          ))}
        </ul>
      )}
      {emoji && (
        <div class="emoji-pop" role="dialog" aria-label={t('Emoji')}>
          {EMOJI.map((e) => <button key={e} type="button" aria-label={e} onClick={() => { insert(e); setEmoji(false); }}>{e}</button>)}
        </div>
      )}
      <textarea
        ref={ta}
        rows={3}
        value={text}
        aria-label={mode === 'note' ? t('Write an internal note') : t('Write a reply')}
        placeholder={mode === 'note' ? t('Write an internal note — type @ to mention a teammate') : t('Write a reply… (Enter sends, Shift+Enter for a new line)')}
        onInput={(e) => onInput(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            if (candidates.length) insert('@' + (candidates[0].display_name || candidates[0].name) + ' ', true);
            else submit();
          } else if (e.key === 'Escape') {
            setMention(null);
            setEmoji(false);
          }
        }}
      />
      <div class="composer-bar">
        <button type="button" class="icon" aria-label={t('Emoji')} aria-expanded={emoji} onClick={() => setEmoji(!emoji)}>😊</button>
        <button type="button" class="icon" aria-label={t('Attach a file')} onClick={() => fileRef.current?.click()} disabled={uploading}>📎</button>
        <input ref={fileRef} type="file" hidden onChange={(e) => { const f = e.currentTarget.files?.[0]; e.currentTarget.value = ''; if (f) void upload(f); }} />
        {site?.settings?.meeting_url && <button type="button" class="btn ghost sm" onClick={() => insert(site.settings.meeting_url!)}>{t('Insert meeting link')}</button>}
        <span class="muted small grow">{uploading ? t('Uploading…') : mode === 'note' ? t('Only your team sees notes') : ''}</span>
        <button class="btn primary" type="submit" disabled={!text.trim()}>{mode === 'note' ? t('Add note') : t('Send')}</button>
      </div>
    </form>
  );
}

// ---- side panel (I8) ----------------------------------------------------------------------
function SidePanel(props: { id: number }) {
  const s = useStore();
  const d = s.details.get(props.id);
  const contactId = d?.conversation.contact_id ?? d?.contact?.id;
  const [info, setInfo] = useState<ContactInfo | null>(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    if (contactId == null) return;
    let live = true;
    api<ContactInfo>('GET', `/contacts/${contactId}`).then((r) => { if (live) setInfo(r); }).catch((e: Error) => toast(e.message));
    return () => { live = false; };
  }, [contactId, reload]);
  if (!d) return <aside class="side-col" />;
  const contact = info?.contact ?? d.contact;
  return (
    <aside class="side-col" aria-label={t('Contact')}>
      {contact && <ContactForm key={contact.id} contact={contact} onSaved={() => setReload(reload + 1)} />}
      <Tags conv={d.conversation} />
      {contactId != null && <Notes contactId={contactId} notes={info?.notes ?? []} onAdded={() => setReload(reload + 1)} />}
      {info && (
        <>
          <section class="panel">
            <h3>{t('Earlier conversations')}</h3>
            {info.conversations.filter((c) => c.id !== props.id).length === 0 ? <p class="muted small">{t('None')}</p> : (
              <ul class="plain">
                {info.conversations.filter((c) => c.id !== props.id).map((c) => (
                  <li key={c.id}><a href={`#/inbox/${store.folder}/${c.id}`}>#{c.id}</a> <span class={'pill ' + c.status}>{t(c.status === 'open' ? 'Open' : c.status === 'closed' ? 'Closed' : 'Snoozed')}</span> <span class="muted small">{fmtTime(c.created_at)}</span></li>
                ))}
              </ul>
            )}
          </section>
          <section class="panel">
            <h3>{t('Pages visited')}</h3>
            {info.page_views.length === 0 ? <p class="muted small">{t('None')}</p> : (
              <ul class="plain pages">
                {info.page_views.slice(-15).reverse().map((p, i) => (
                  <li key={i}><a href={p.url} target="_blank" rel="noopener noreferrer" title={p.url}>{p.title || p.url}</a> <span class="muted small">{fmtTime(p.created_at)}</span></li>
                ))}
              </ul>
            )}
            {(() => {
              const ref = info.page_views.find((p) => p.referrer)?.referrer;
              return ref ? <p class="small"><span class="muted">{t('Referrer')}:</span> <a href={ref} target="_blank" rel="noopener noreferrer">{ref}</a></p> : null;
            })()}
          </section>
        </>
      )}
      {contact && (
        <section class="panel small">
          <h3>{t('Details')}</h3>
          <dl class="dl">
            {contact.location && <><dt>{t('Location')}</dt><dd>{contact.location}</dd></>}
            {contact.user_agent && <><dt>{t('Browser')}</dt><dd>{contact.user_agent}</dd></>}
            {contact.ip && <><dt>{t('IP address')}</dt><dd>{contact.ip}</dd></>}
            {contact.consent_at && <><dt>{t('Consent')}</dt><dd>{fmtTime(contact.consent_at)}{contact.consent_text ? ` — ${contact.consent_text}` : ''}</dd></>}
            {contact.verified && <><dt>{t('Identified')}</dt><dd>✓ {contact.external_id}</dd></>}
            {d.conversation.start_url && <><dt>{t('Started on')}</dt><dd>{d.conversation.start_url}</dd></>}
            {d.conversation.rating && <><dt>{t('Rating')}</dt><dd>{d.conversation.rating === 'good' ? '👍' : '👎'} {d.conversation.rating_comment ?? ''}</dd></>}
          </dl>
        </section>
      )}
    </aside>
  );
}

function ContactForm(props: { contact: Contact; onSaved: () => void }) {
  const c = props.contact;
  const [name, setName] = useState(c.name ?? '');
  const [email, setEmail] = useState(c.email ?? '');
  const [phone, setPhone] = useState(c.phone ?? '');
  const dirty = name !== (c.name ?? '') || email !== (c.email ?? '') || phone !== (c.phone ?? '');
  return (
    <form class="panel" onSubmit={async (e) => {
      e.preventDefault();
      await attempt(async () => {
        await api<Contact>('PATCH', `/contacts/${c.id}`, { name: name || null, email: email || null, phone: phone || null } satisfies wire.ContactPatchRequest);
        toast(t('Contact saved'), 'info');
        if (store.openId != null) void refreshDetails(store.openId);
        props.onSaved();
      });
    }}>
      <div class="contact-head"><Avatar name={name || email || '?'} size={40} /><div><strong>{name || email || t('Visitor #{id}', { id: c.id })}</strong><div class="muted small">{t('Contact')}</div></div></div>
      <label class="field"><span>{t('Name')}</span><input value={name} onInput={(e) => setName(e.currentTarget.value)} /></label>
      <label class="field"><span>{t('Email')}</span><input type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} /></label>
      <label class="field"><span>{t('Phone')}</span><input type="tel" value={phone} onInput={(e) => setPhone(e.currentTarget.value)} /></label>
      {dirty && <button class="btn primary sm" type="submit">{t('Save')}</button>}
    </form>
  );
}

function Tags(props: { conv: wire.Conversation }) {
  const tags = props.conv.tags ?? [];
  const [v, setV] = useState('');
  const save = (next: string[]) => attempt(async () => {
    await api<wire.Conversation>('PUT', `/conversations/${props.conv.id}/tags`, { tags: next } satisfies wire.TagsRequest);
    const d = store.details.get(props.conv.id);
    if (d) d.conversation.tags = next;
    const r = store.rows.find((x) => x.id === props.conv.id);
    if (r) r.tags = next;
    changed();
  });
  return (
    <section class="panel">
      <h3>{t('Tags')}</h3>
      <div class="tags">
        {tags.map((x) => <span key={x} class="tag">{x}<button type="button" aria-label={t('Remove tag {tag}', { tag: x })} onClick={() => save(tags.filter((y) => y !== x))}>×</button></span>)}
        <form onSubmit={(e) => { e.preventDefault(); const n = v.trim(); if (n && !tags.includes(n)) void save([...tags, n]); setV(''); }}>
          <input class="tag-in" value={v} placeholder={t('Add tag')} aria-label={t('Add tag')} onInput={(e) => setV(e.currentTarget.value)} />
        </form>
      </div>
    </section>
  );
}

function Notes(props: { contactId: number; notes: ContactInfo['notes']; onAdded: () => void }) {
  const [body, setBody] = useState('');
  const notes = useMemo(() => props.notes.slice().reverse(), [props.notes]);
  return (
    <section class="panel">
      <h3>{t('Shared notes')}</h3>
      <form class="note-form" onSubmit={async (e) => {
        e.preventDefault();
        if (!body.trim()) return;
        await attempt(async () => {
          await api<wire.ContactNote>('POST', `/contacts/${props.contactId}/notes`, { body: body.trim() } satisfies wire.NoteRequest);
          setBody('');
          props.onAdded();
        });
      }}>
        <textarea rows={2} value={body} placeholder={t('Add a note for your team')} aria-label={t('Add a note for your team')} onInput={(e) => setBody(e.currentTarget.value)} />
        {body.trim() && <button class="btn sm" type="submit">{t('Add note')}</button>}
      </form>
      <ul class="plain notes">
        {notes.map((n) => <li key={n.id}><div class="small muted">{agentName(n.agent_id)} · {fmtTime(n.created_at)}</div><div class="prewrap">{n.body}</div></li>)}
      </ul>
    </section>
  );
}
