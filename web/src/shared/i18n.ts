// A tiny translation layer: t(key, params). English is complete; other catalogs fall back
// to English key by key. No DOM here except reading the browser's language when asked.

export type Catalog = Record<string, string>;
export type Catalogs = Record<string, Catalog>;

/** Picks the best catalog for a BCP 47 tag: "sv-SE" → "sv", "no"/"nn" → "nb". */
export function pickLanguage(tag: string | null | undefined, available: Catalogs): string {
  const t = (tag || '').toLowerCase();
  if (available[t]) return t;
  const base = t.split('-')[0];
  if (available[base]) return base;
  if ((base === 'no' || base === 'nn') && available.nb) return 'nb';
  return 'en';
}

/** Replaces {name} placeholders with params. */
export function format(text: string, params?: Record<string, string | number>): string {
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (all, k: string) => (k in params ? String(params[k]) : all));
}

export function makeT(catalogs: Catalogs, lang: string) {
  const own = catalogs[lang] || {};
  const en = catalogs.en || {};
  return function t(key: string, params?: Record<string, string | number>): string {
    const text = own[key] ?? en[key] ?? key;
    return format(text, params);
  };
}

export type T = ReturnType<typeof makeT>;
