// Settings for admins (sites, agents, teams) and every agent's own profile.
import { useState } from 'preact/hooks';
import { api } from './api';
import { attempt, beep, loadDirectory, store, toast, updateMe, useStore, type Agent, type Site, type SiteSettings, type Team } from './state';
import { t } from './i18n';
import { Avatar } from './shell';

const DAYS = [/*i18n*/ 'mon', /*i18n*/ 'tue', /*i18n*/ 'wed', /*i18n*/ 'thu', /*i18n*/ 'fri', /*i18n*/ 'sat', /*i18n*/ 'sun'];

export function SettingsPage(props: { route: string[] }) {
  const s = useStore();
  const tab = props.route[1] ?? 'sites';
  const admin = s.me!.role === 'owner' || s.me!.role === 'admin';
  return (
    <main class="page">
      <h1>{t('Settings')}</h1>
      <nav class="tabs-nav" aria-label={t('Settings')}>
        {[['sites', /*i18n*/ 'Sites'], ['agents', /*i18n*/ 'Agents'], ['teams', /*i18n*/ 'Teams']].map(([k, label]) => (
          <a key={k} href={`#/settings/${k}`} class={tab === k ? 'active' : ''} aria-current={tab === k ? 'page' : undefined}>{t(label)}</a>
        ))}
      </nav>
      {!admin && <p class="muted">{t('Only admins can change settings.')}</p>}
      {tab === 'sites' && <Sites selected={props.route[2]} />}
      {tab === 'agents' && <Agents />}
      {tab === 'teams' && <Teams />}
    </main>
  );
}

// ---- sites --------------------------------------------------------------------------------
function snippet(site: Site): string {
  return site.embed_snippet || `<script async src="${location.origin}/widget.js" data-site-key="${site.public_key}"></script>`;
}

function Sites(props: { selected?: string }) {
  const s = useStore();
  const site = props.selected === 'new' ? null : s.sites.find((x) => String(x.id) === props.selected);
  return (
    <div class="split">
      <ul class="plain side-list">
        {s.sites.map((x) => <li key={x.id}><a href={`#/settings/sites/${x.id}`} class={site?.id === x.id ? 'active' : ''}>{x.name}</a></li>)}
        <li><a href="#/settings/sites/new" class={props.selected === 'new' ? 'active' : ''}>+ {t('New site')}</a></li>
      </ul>
      <div class="grow">
        {props.selected === 'new' ? <SiteForm key="new" site={null} /> : site ? <SiteForm key={site.id} site={site} /> : <p class="muted">{t('Pick a site to edit it, or create a new one.')}</p>}
      </div>
    </div>
  );
}

const DEFAULTS: SiteSettings = {
  allowed_origins: [], welcome_message: 'Hi! How can we help you today?', online_message: "We're online and will be with you in a moment.",
  offline_message: "We're away right now. Leave your email and we'll get back to you.", wait_time_secs: 120,
  office_hours: { timezone: 'UTC', intervals: [] }, reopen_policy: 'reopen', who_may_chat: 'anyone', privacy_url: null, terms_url: null,
  consent_text: null, inactivity_timeout_secs: 1800, meeting_url: null, max_attachment_bytes: 10 * 1024 * 1024,
};

function SiteForm(props: { site: Site | null }) {
  const site = props.site;
  const [name, setName] = useState(site?.name ?? '');
  const [st, setSt] = useState<SiteSettings>({ ...DEFAULTS, ...(site?.settings ?? {}) });
  const [origins, setOrigins] = useState((site?.settings?.allowed_origins ?? []).join('\n'));
  const set = <K extends keyof SiteSettings>(k: K, v: SiteSettings[K]) => setSt({ ...st, [k]: v });
  const opt = (v: string) => (v.trim() ? v.trim() : null);
  const intervals = st.office_hours?.intervals ?? [];
  const setIntervals = (iv: SiteSettings['office_hours']['intervals']) => set('office_hours', { ...st.office_hours, intervals: iv });
  const save = async (e: Event) => {
    e.preventDefault();
    const settings: SiteSettings = { ...st, allowed_origins: origins.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean) };
    await attempt(async () => {
      const r = site
        ? await api<Site>('PATCH', `/sites/${site.id}`, { name, settings })
        : await api<Site>('POST', '/sites', { name, settings });
      await loadDirectory();
      toast(t('Site saved'), 'info');
      if (!site && r?.id) location.hash = `#/settings/sites/${r.id}`;
    });
  };
  return (
    <form class="card form" onSubmit={save}>
      <h2>{site ? site.name : t('New site')}</h2>
      {site && (
        <div class="field">
          <span>{t('Embed snippet')}</span>
          <div class="snippet">
            <code>{snippet(site)}</code>
            <button type="button" class="btn sm" onClick={() => navigator.clipboard?.writeText(snippet(site)).then(() => toast(t('Copied'), 'info'), () => toast(t('Copy it by hand')))}>{t('Copy')}</button>
          </div>
          <small class="muted">{t('Paste it before </body> on every page that should show the chat.')}</small>
        </div>
      )}
      <label class="field"><span>{t('Name')}</span><input required value={name} onInput={(e) => setName(e.currentTarget.value)} /></label>
      <label class="field"><span>{t('Allowed origins')}</span><textarea rows={2} value={origins} placeholder="https://www.example.com" onInput={(e) => setOrigins(e.currentTarget.value)} /><small class="muted">{t('One per line: scheme://host[:port]. The widget is refused elsewhere.')}</small></label>
      <label class="field"><span>{t('Welcome message')}</span><textarea rows={2} value={st.welcome_message} onInput={(e) => set('welcome_message', e.currentTarget.value)} /><small class="muted">{t('Markdown: **bold**, *italic*, links, lists and images.')}</small></label>
      <label class="field"><span>{t('Online message')}</span><textarea rows={2} value={st.online_message} onInput={(e) => set('online_message', e.currentTarget.value)} /></label>
      <label class="field"><span>{t('Offline message')}</span><textarea rows={2} value={st.offline_message} onInput={(e) => set('offline_message', e.currentTarget.value)} /></label>
      <div class="grid2">
        <label class="field"><span>{t('Wait time (seconds)')}</span><input type="number" min={0} value={st.wait_time_secs} onInput={(e) => set('wait_time_secs', Number(e.currentTarget.value))} /></label>
        <label class="field"><span>{t('Inactivity timeout (seconds)')}</span><input type="number" min={0} value={st.inactivity_timeout_secs} onInput={(e) => set('inactivity_timeout_secs', Number(e.currentTarget.value))} /></label>
        <label class="field"><span>{t('Reopen policy')}</span>
          <select value={st.reopen_policy} onChange={(e) => set('reopen_policy', e.currentTarget.value as SiteSettings['reopen_policy'])}>
            <option value="reopen">{t('Reopen: a new message reopens the conversation')}</option>
            <option value="final">{t('Final: a new message starts a new conversation')}</option>
          </select>
        </label>
        <label class="field"><span>{t('Who may chat')}</span>
          <select value={st.who_may_chat} onChange={(e) => set('who_may_chat', e.currentTarget.value as SiteSettings['who_may_chat'])}>
            <option value="anyone">{t('Anyone')}</option>
            <option value="logged_in_to_chat">{t('Everyone sees it; logged-in customers chat')}</option>
            <option value="logged_in_only">{t('Only logged-in customers see it')}</option>
          </select>
        </label>
        <label class="field"><span>{t('Privacy policy URL')}</span><input type="url" value={st.privacy_url ?? ''} onInput={(e) => set('privacy_url', opt(e.currentTarget.value))} /></label>
        <label class="field"><span>{t('Terms URL')}</span><input type="url" value={st.terms_url ?? ''} onInput={(e) => set('terms_url', opt(e.currentTarget.value))} /></label>
        <label class="field"><span>{t('Meeting link')}</span><input type="url" value={st.meeting_url ?? ''} onInput={(e) => set('meeting_url', opt(e.currentTarget.value))} /></label>
        <label class="field"><span>{t('Largest attachment (MB)')}</span><input type="number" min={0} step="0.5" value={st.max_attachment_bytes / 1048576} onInput={(e) => set('max_attachment_bytes', Math.round(Number(e.currentTarget.value) * 1048576))} /></label>
      </div>
      <label class="field"><span>{t('Consent checkbox text (empty: no checkbox)')}</span><input value={st.consent_text ?? ''} onInput={(e) => set('consent_text', opt(e.currentTarget.value))} /></label>
      <fieldset class="field">
        <legend>{t('Office hours')}</legend>
        <label class="field inline"><span>{t('Time zone')}</span><input value={st.office_hours?.timezone ?? 'UTC'} onInput={(e) => set('office_hours', { ...st.office_hours, timezone: e.currentTarget.value })} placeholder="Europe/Stockholm" /></label>
        {intervals.length === 0 && <p class="muted small">{t('No office hours: the site is online whenever an agent is available.')}</p>}
        {intervals.map((iv, i) => (
          <div class="interval" key={i}>
            <select aria-label={t('Day')} value={iv.day} onChange={(e) => setIntervals(intervals.map((x, j) => (j === i ? { ...x, day: e.currentTarget.value } : x)))}>
              {DAYS.map((d) => <option key={d} value={d}>{t(d)}</option>)}
            </select>
            <input type="time" aria-label={t('From')} value={iv.from} onInput={(e) => setIntervals(intervals.map((x, j) => (j === i ? { ...x, from: e.currentTarget.value } : x)))} />
            <span>–</span>
            <input type="time" aria-label={t('To')} value={iv.to} onInput={(e) => setIntervals(intervals.map((x, j) => (j === i ? { ...x, to: e.currentTarget.value } : x)))} />
            <button type="button" class="link" onClick={() => setIntervals(intervals.filter((_, j) => j !== i))}>{t('Remove')}</button>
          </div>
        ))}
        <button type="button" class="btn ghost sm" onClick={() => setIntervals([...intervals, { day: 'mon', from: '09:00', to: '17:00' }])}>+ {t('Add hours')}</button>
        <button type="button" class="btn ghost sm" onClick={() => setIntervals(DAYS.slice(0, 5).map((day) => ({ day, from: '09:00', to: '17:00' })))}>{t('Weekdays 9–17')}</button>
      </fieldset>
      <div class="form-actions"><button class="btn primary" type="submit">{site ? t('Save changes') : t('Create site')}</button></div>
    </form>
  );
}

// ---- agents -------------------------------------------------------------------------------
function Agents() {
  const s = useStore();
  const me = s.me!;
  const [f, setF] = useState({ email: '', name: '', password: '', role: 'agent', access: 'full' });
  const patch = (a: Agent, p: Partial<Agent>) => attempt(async () => {
    await api('PATCH', `/agents/${a.id}`, p);
    await loadDirectory();
  });
  return (
    <div class="stack">
      <table class="table">
        <thead><tr><th>{t('Agent')}</th><th>{t('Role')}</th><th>{t('Access')}</th><th>{t('Status')}</th><th /></tr></thead>
        <tbody>
          {s.agents.map((a) => (
            <tr key={a.id} class={a.deactivated ? 'muted' : ''}>
              <td><div class="who"><Avatar name={a.display_name || a.name} url={a.avatar_url} size={28} /><div><div>{a.name}{a.display_name && a.display_name !== a.name ? ` (${a.display_name})` : ''}</div><div class="muted small">{a.email}</div></div></div></td>
              <td>
                <select aria-label={t('Role')} value={a.role} disabled={a.role === 'owner' || a.id === me.id} onChange={(e) => patch(a, { role: e.currentTarget.value as Agent['role'] })}>
                  {a.role === 'owner' && <option value="owner">{t('Owner')}</option>}
                  <option value="admin">{t('Admin')}</option>
                  <option value="agent">{t('Agent')}</option>
                </select>
              </td>
              <td>
                <select aria-label={t('Access')} value={a.access} disabled={a.role !== 'agent'} onChange={(e) => patch(a, { access: e.currentTarget.value as Agent['access'] })}>
                  <option value="full">{t('Full')}</option>
                  <option value="restricted">{t('Restricted')}</option>
                </select>
              </td>
              <td>{a.deactivated ? t('Deactivated') : a.available ? <span class="ok">● {t('Available')}</span> : <span class="muted">○ {t('Away')}</span>}</td>
              <td>{a.role !== 'owner' && a.id !== me.id && <button type="button" class="link" onClick={() => patch(a, { deactivated: !a.deactivated })}>{a.deactivated ? t('Reactivate') : t('Deactivate')}</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="card form" onSubmit={async (e) => {
        e.preventDefault();
        await attempt(async () => {
          await api('POST', '/agents', f);
          setF({ email: '', name: '', password: '', role: 'agent', access: 'full' });
          await loadDirectory();
          toast(t('Agent added'), 'info');
        });
      }}>
        <h2>{t('Add an agent')}</h2>
        <div class="grid2">
          <label class="field"><span>{t('Name')}</span><input required value={f.name} onInput={(e) => setF({ ...f, name: e.currentTarget.value })} /></label>
          <label class="field"><span>{t('Email')}</span><input required type="email" value={f.email} onInput={(e) => setF({ ...f, email: e.currentTarget.value })} /></label>
          <label class="field"><span>{t('Password')}</span><input required type="password" minLength={8} value={f.password} onInput={(e) => setF({ ...f, password: e.currentTarget.value })} autocomplete="new-password" /></label>
          <label class="field"><span>{t('Role')}</span><select value={f.role} onChange={(e) => setF({ ...f, role: e.currentTarget.value })}><option value="agent">{t('Agent')}</option><option value="admin">{t('Admin')}</option></select></label>
          <label class="field"><span>{t('Access')}</span><select value={f.access} onChange={(e) => setF({ ...f, access: e.currentTarget.value })}><option value="full">{t('Full: sees every conversation')}</option><option value="restricted">{t("Restricted: not colleagues' conversations")}</option></select></label>
        </div>
        <div class="form-actions"><button class="btn primary" type="submit">{t('Add agent')}</button></div>
      </form>
    </div>
  );
}

// ---- teams --------------------------------------------------------------------------------
function Teams() {
  const s = useStore();
  const [name, setName] = useState('');
  const save = (team: Team, members: number[]) => attempt(async () => {
    await api('PATCH', `/teams/${team.id}`, { name: team.name, members });
    await loadDirectory();
  });
  return (
    <div class="stack">
      {s.teams.length === 0 && <p class="muted">{t('No teams yet.')}</p>}
      {s.teams.map((team) => (
        <div class="card" key={team.id}>
          <div class="row-between"><h2>{team.name}</h2><button type="button" class="link danger" onClick={() => attempt(async () => { await api('DELETE', `/teams/${team.id}`); await loadDirectory(); })}>{t('Delete')}</button></div>
          <div class="checks">
            {s.agents.filter((a) => !a.deactivated).map((a) => (
              <label key={a.id} class="check"><input type="checkbox" checked={team.members.includes(a.id)} onChange={(e) => save(team, e.currentTarget.checked ? [...team.members, a.id] : team.members.filter((x) => x !== a.id))} /> {a.display_name || a.name}</label>
            ))}
          </div>
        </div>
      ))}
      <form class="card form inline-form" onSubmit={async (e) => {
        e.preventDefault();
        await attempt(async () => {
          await api('POST', '/teams', { name, members: [] });
          setName('');
          await loadDirectory();
        });
      }}>
        <label class="field grow"><span>{t('New team')}</span><input required value={name} onInput={(e) => setName(e.currentTarget.value)} /></label>
        <button class="btn primary" type="submit">{t('Create team')}</button>
      </form>
    </div>
  );
}

// ---- profile ------------------------------------------------------------------------------
export function ProfilePage() {
  const s = useStore();
  const me = s.me!;
  const [display, setDisplay] = useState(me.display_name ?? '');
  const [avatar, setAvatar] = useState(me.avatar_url ?? '');
  const perm = 'Notification' in window ? Notification.permission : 'unsupported';
  return (
    <main class="page">
      <h1>{t('Your profile')}</h1>
      <form class="card form" onSubmit={(e) => { e.preventDefault(); void updateMe({ display_name: display, avatar_url: avatar || null }).then(() => toast(t('Profile saved'), 'info')); }}>
        <div class="who"><Avatar name={display || me.name} url={avatar} size={48} /><div><strong>{me.name}</strong><div class="muted small">{me.email} · {t(me.role === 'owner' ? 'Owner' : me.role === 'admin' ? 'Admin' : 'Agent')}</div></div></div>
        <label class="field"><span>{t('Display name (what visitors see)')}</span><input required value={display} onInput={(e) => setDisplay(e.currentTarget.value)} /></label>
        <label class="field"><span>{t('Avatar URL')}</span><input type="url" value={avatar} placeholder="https://…" onInput={(e) => setAvatar(e.currentTarget.value)} /></label>
        <div class="form-actions"><button class="btn primary" type="submit">{t('Save profile')}</button></div>
      </form>
      <section class="card form">
        <h2>{t('Notifications')}</h2>
        <label class="check"><input type="checkbox" checked={me.notify_desktop} onChange={(e) => updateMe({ notify_desktop: e.currentTarget.checked })} /> {t('Desktop notifications')}</label>
        <label class="check"><input type="checkbox" checked={me.notify_sound} onChange={(e) => updateMe({ notify_sound: e.currentTarget.checked })} /> {t('Play a sound')}</label>
        {me.notify_all_messages !== undefined && <label class="check"><input type="checkbox" checked={!!me.notify_all_messages} onChange={(e) => updateMe({ notify_all_messages: e.currentTarget.checked })} /> {t("Also new messages in unassigned and others' conversations")}</label>}
        <div class="row-gap">
          {perm === 'default' && <button type="button" class="btn sm" onClick={() => Notification.requestPermission().then(() => store && toast(t('Thanks!'), 'info'))}>{t('Allow desktop notifications in this browser')}</button>}
          {perm === 'denied' && <span class="muted small">{t('This browser blocks notifications from Confab; allow them in the site settings.')}</span>}
          <button type="button" class="btn ghost sm" onClick={() => beep()}>{t('Test sound')}</button>
        </div>
      </section>
    </main>
  );
}
