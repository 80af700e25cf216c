// The frame around every signed-in page: navigation, folders with live counts, the
// availability switch and the connection indicator.
import type { ComponentChildren } from 'preact';
import { FOLDERS, effectiveAccess, type Folder } from '../shared/inbox-rules';
import { unreadCount } from '../shared/notifications';
import { KIND_TITLE, changed, logout, readNotifications, setAvailable, store, toggleNotifications, useStore, type AppNotification } from './state';
import { t, lang } from './i18n';

export const FOLDER_NAMES: Record<Folder, string> = {
  unassigned: /*i18n*/ 'Unassigned',
  mine: /*i18n*/ 'Mine',
  others: /*i18n*/ "Others'",
  snoozed: /*i18n*/ 'Snoozed',
  closed: /*i18n*/ 'Closed',
};

export function Avatar(props: { name: string; url?: string | null; size?: number }) {
  const size = props.size ?? 32;
  const url = props.url && /^https?:\/\//.test(props.url) ? props.url : null;
  const hue = [...(props.name || '?')].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 360, 7);
  return (
    <span class="avatar" style={{ width: `${size}px`, height: `${size}px`, fontSize: `${Math.round(size * 0.42)}px`, background: url ? undefined : `hsl(${hue} 45% 88%)`, color: `hsl(${hue} 45% 30%)` }} aria-hidden="true">
      {url ? <img src={url} alt="" /> : (props.name || '?').trim().charAt(0).toUpperCase()}
    </span>
  );
}

export function ConnectionIndicator() {
  const s = useStore();
  const open = s.socketState === 'open';
  return (
    <div class={'conn ' + (open ? 'ok' : 'bad')} role="status" aria-live="polite" data-state={s.socketState}>
      <span class="dot" aria-hidden="true" />
      {open ? t('Connected') : t('Reconnecting…')}
    </div>
  );
}

function ago(iso: string): string {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return '';
  const today = new Date().toDateString() === d.toDateString();
  return new Intl.DateTimeFormat(lang, today ? { hour: '2-digit', minute: '2-digit' } : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }).format(d);
}

/** E3: the bell with the unread count, and the list it opens. */
export function Bell() {
  const s = useStore();
  const unread = unreadCount(s.notifications);
  const open = s.notificationsOpen;
  const go = (n: AppNotification) => {
    if (!n.read_at) void readNotifications([n.id]);
    toggleNotifications(false);
    location.hash = `#/inbox/${store.folder}/${n.conversation_id}`;
  };
  return (
    <div class="bell-wrap">
      <button
        type="button"
        class={'bell' + (unread ? ' hot' : '')}
        aria-expanded={open}
        aria-haspopup="true"
        aria-label={unread ? t('Notifications ({count} unread)', { count: unread }) : t('Notifications')}
        data-unread={unread}
        onClick={() => toggleNotifications()}
      >
        <span aria-hidden="true">🔔</span>
        <span class="bell-label">{t('Notifications')}</span>
        {unread > 0 && <span class="count hot" aria-hidden="true">{unread > 99 ? '99+' : unread}</span>}
      </button>
      {open && (
        <div class="notif-pop" role="dialog" aria-label={t('Notifications')} onKeyDown={(e) => { if (e.key === 'Escape') toggleNotifications(false); }}>
          <div class="notif-head">
            <strong>{t('Notifications')}</strong>
            {unread > 0 && <button type="button" class="link" onClick={() => readNotifications()}>{t('Mark all as read')}</button>}
          </div>
          {s.notifications.length === 0 ? <p class="muted small pad">{t('No notifications yet')}</p> : (
            <ul class="plain notif-list">
              {s.notifications.map((n) => (
                <li key={n.id}>
                  <button type="button" class={'notif' + (n.read_at ? '' : ' unread')} data-notification={n.id} onClick={() => go(n)}>
                    <span class="notif-title">{t(KIND_TITLE[n.kind] ?? 'Confab')}</span>
                    <span class="notif-preview">{n.preview}</span>
                    <time class="muted small">{ago(n.created_at)}</time>
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}

export function Shell(props: { section: string; children: ComponentChildren }) {
  const s = useStore();
  const me = s.me!;
  const admin = me.role === 'owner' || me.role === 'admin';
  const counts = s.counts;
  return (
    <div class="app">
      <nav class="nav" aria-label={t('Main')}>
        <div class="brand"><span class="logo" aria-hidden="true" />Confab</div>
        <button
          type="button"
          role="switch"
          aria-checked={me.available}
          class={'avail ' + (me.available ? 'on' : 'off')}
          onClick={() => setAvailable(!me.available)}
          title={t('Only available agents can be given new conversations')}
        >
          <span class="knob" aria-hidden="true" />
          {me.available ? t('Available') : t('Away')}
        </button>
        <Bell />
        <ul class="folders">
          {FOLDERS.map((f) => {
            if (f === 'others' && (counts ? counts.others == null : effectiveAccess(me) === 'restricted')) return null;
            const n = counts ? (counts[f] as number | null) : null;
            const active = props.section === 'inbox' && s.folder === f && !location.hash.includes('search');
            return (
              <li key={f}>
                <a href={`#/inbox/${f}`} class={active ? 'active' : ''} aria-current={active ? 'page' : undefined} data-folder={f}>
                  <span>{t(FOLDER_NAMES[f])}</span>
                  {n != null && <span class={'count' + (n && (f === 'unassigned' || f === 'mine') ? ' hot' : '')}>{n}</span>}
                </a>
              </li>
            );
          })}
        </ul>
        <div class="nav-bottom">
          {admin && <a href="#/settings/sites" class={props.section === 'settings' ? 'active' : ''}>{t('Settings')}</a>}
          <a href="#/profile" class={'me ' + (props.section === 'profile' ? 'active' : '')}>
            <Avatar name={me.display_name || me.name} url={me.avatar_url} size={24} />
            <span>{me.display_name || me.name}</span>
          </a>
          <button type="button" class="link" onClick={() => logout()}>{t('Sign out')}</button>
          <ConnectionIndicator />
        </div>
      </nav>
      {props.children}
      {s.toast && <div class={'toast ' + s.toast.kind} role="alert">{s.toast.text}<button type="button" class="x" aria-label={t('Dismiss')} onClick={() => { store.toast = null; changed(); }}>×</button></div>}
    </div>
  );
}
