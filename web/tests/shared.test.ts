import { describe, expect, it } from 'vitest';
import { linkify, formatBytes } from '../src/shared/linkify';
import { makeT, pickLanguage } from '../src/shared/i18n';
import { widgetCatalogs } from '../src/widget/i18n';
import { inboxCatalogs } from '../src/inbox/catalogs';

describe('linkify', () => {
  it('finds http, https and www links and leaves the rest as text', () => {
    expect(linkify('see https://example.com/a?b=1, or www.x.org.')).toEqual([
      { text: 'see ' },
      { text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { text: ', or ' },
      { text: 'www.x.org', href: 'https://www.x.org' },
      { text: '.' },
    ]);
  });
  it('never links javascript: or other schemes', () => {
    expect(linkify('javascript:alert(1) data:text/html,x')).toEqual([{ text: 'javascript:alert(1) data:text/html,x' }]);
  });
  it('stops at quotes and angle brackets', () => {
    const segs = linkify('<a href="https://e.com/x">');
    expect(segs.filter((s) => s.href).map((s) => s.href)).toEqual(['https://e.com/x']);
  });
  it('formats sizes', () => {
    expect(formatBytes(10 * 1024 * 1024)).toBe('10 MB');
    expect(formatBytes(1536 * 1024)).toBe('1.5 MB');
    expect(formatBytes(2048)).toBe('2 KB');
  });
});

describe('i18n', () => {
  it('picks a language and falls back per key', () => {
    expect(pickLanguage('sv-SE', widgetCatalogs)).toBe('sv');
    expect(pickLanguage('no', widgetCatalogs)).toBe('nb');
    expect(pickLanguage('de-DE', widgetCatalogs)).toBe('en');
    const t = makeT({ en: { a: 'Hi {name}', b: 'B' }, sv: { a: 'Hej {name}' } }, 'sv');
    expect(t('a', { name: 'Ann' })).toBe('Hej Ann');
    expect(t('b')).toBe('B');
    expect(t('missing')).toBe('missing');
  });
  for (const [name, cats] of [['widget', widgetCatalogs], ['inbox', inboxCatalogs]] as const) {
    it(`${name} catalogs: sv, nb and hu exist and use only English keys and placeholders`, () => {
      const en = cats.en;
      for (const lang of ['sv', 'nb', 'hu']) {
        const cat = cats[lang];
        expect(cat, lang).toBeTruthy();
        for (const [k, v] of Object.entries(cat)) {
          expect(en[k], `${lang}.${k}`).toBeDefined();
          const ph = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort().join();
          expect(ph(v), `${lang}.${k}`).toBe(ph(en[k]));
        }
      }
    });
  }
});

describe('inbox catalog freshness', () => {
  it('has an English entry for every t() key in src/inbox (run `npm run i18n` to refresh)', () => {
    const files = import.meta.glob<string>(['../src/inbox/*.ts', '../src/inbox/*.tsx', '!../src/inbox/catalogs.ts'], { query: '?raw', import: 'default', eager: true });
    const missing: string[] = [];
    expect(Object.keys(files).length).toBeGreaterThan(4);
    for (const src of Object.values(files)) {
      for (const m of src.matchAll(/\bt\(\s*(['"])((?:\\.|(?!\1).)*)\1/g)) {
        const k = m[2].replace(/\\(['"])/g, '$1');
        if (!(k in inboxCatalogs.en)) missing.push(k);
      }
    }
    expect(missing).toEqual([]);
  });
  it('is translated completely into sv, nb and hu', () => {
    for (const lang of ['sv', 'nb', 'hu']) {
      const untranslated = Object.keys(inboxCatalogs.en).filter((k) => !(k in inboxCatalogs[lang]));
      expect(untranslated, lang).toEqual([]);
    }
  });
});
