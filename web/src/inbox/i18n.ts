// The inbox's strings. Keys are the English texts; catalogs.ts is generated for English by
// scripts/i18n-extract.mjs and translated by hand for sv, nb and hu (English per key where a
// translation is missing).
import { makeT, pickLanguage } from '../shared/i18n';
import { inboxCatalogs } from './catalogs';

export { inboxCatalogs };
export const lang = pickLanguage(localStorage.getItem('confab:lang') || navigator.language, inboxCatalogs);
export const t = makeT(inboxCatalogs, lang);
