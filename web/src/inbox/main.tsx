// The agent inbox: hash routes (#/inbox/<folder>/<id>, #/settings/..., #/profile, #/login,
// #/setup), one store (state.ts), one agent WebSocket (socket.ts).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './styles.css';
import { boot, login, setup, useStore, store } from './state';
import { t, lang } from './i18n';
import { InboxPage } from './inbox';
import { SettingsPage, ProfilePage } from './settings';
import { Shell } from './shell';

export function useRoute(): string[] {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const f = () => setHash(location.hash);
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return hash.replace(/^#\/?/, '').split('?')[0].split('/').filter(Boolean);
}

function App() {
  const s = useStore();
  const route = useRoute();
  if (!s.booted) return <div class="center muted">{t('Loading…')}</div>;
  if (s.needsSetup) return <SetupPage />;
  if (!s.me) return <LoginPage />;
  const [section = 'inbox'] = route;
  return (
    <Shell section={section}>
      {section === 'settings' ? <SettingsPage route={route} /> : section === 'profile' ? <ProfilePage /> : <InboxPage route={route} />}
    </Shell>
  );
}

function AuthCard(props: { title: string; subtitle: string; children: preact.ComponentChildren; onSubmit: () => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  return (
    <main class="auth">
      <form
        class="auth-card"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError('');
          try {
            await props.onSubmit();
          } catch (err) {
            setError((err as Error).message);
          }
          setBusy(false);
        }}
      >
        <div class="brand"><span class="logo" aria-hidden="true" />Confab</div>
        <h1>{props.title}</h1>
        <p class="muted">{props.subtitle}</p>
        {props.children}
        {error && <p class="error" role="alert">{error}</p>}
        <button class="btn primary wide" type="submit" disabled={busy}>{busy ? t('Please wait…') : props.title}</button>
      </form>
    </main>
  );
}

function SetupPage() {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  return (
    <AuthCard title={t('Create the owner account')} subtitle={t('Welcome to Confab. This account owns the workspace.')} onSubmit={async () => {
      await setup(email, name, password);
      location.hash = '#/inbox/unassigned';
    }}>
      <label class="field"><span>{t('Name')}</span><input required value={name} onInput={(e) => setName(e.currentTarget.value)} autocomplete="name" /></label>
      <label class="field"><span>{t('Email')}</span><input required type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} autocomplete="username" /></label>
      <label class="field"><span>{t('Password')}</span><input required type="password" minLength={8} value={password} onInput={(e) => setPassword(e.currentTarget.value)} autocomplete="new-password" /></label>
    </AuthCard>
  );
}

function LoginPage() {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  return (
    <AuthCard title={t('Sign in')} subtitle={t('Sign in to answer your visitors.')} onSubmit={async () => {
      await login(email, password);
      if (!location.hash.startsWith('#/inbox')) location.hash = '#/inbox/unassigned';
    }}>
      <label class="field"><span>{t('Email')}</span><input required type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} autocomplete="username" /></label>
      <label class="field"><span>{t('Password')}</span><input required type="password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} autocomplete="current-password" /></label>
    </AuthCard>
  );
}

document.documentElement.lang = lang;
document.title = 'Confab';
void boot();
render(<App />, document.getElementById('app')!);
void store;
