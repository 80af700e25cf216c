// The frame around every signed-in page: navigation, folders with live counts, the
// availability switch and the connection indicator.
import type { ComponentChildren } from 'preact';
import { FOLDERS, effectiveAccess, type Folder } from '../shared/inbox-rules';
import { changed, logout, setAvailable, store, useStore } from './state';
import { t } from './i18n';

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
