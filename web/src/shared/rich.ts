// Markdown-ish formatting for agent and bot texts in the inbox, the way the server renders
// them for the widget (crates/domain/src/rich_text.rs): paragraphs, line breaks, lists,
// **bold**, *italic*, ~~struck~~, `code` and [links](https://…). The result is plain data
// (blocks of styled text spans) for the view to build DOM nodes from: nothing here is HTML,
// so no input can inject markup. Links keep only http(s), mailto and tel targets.
import { linkify } from './linkify';

export interface Span {
  text: string;
  href?: string;
  b?: boolean;
  i?: boolean;
  s?: boolean;
  code?: boolean;
}
type Style = Omit<Span, 'text'>;

export type Block = { kind: 'p'; lines: Span[][] } | { kind: 'ul' | 'ol'; items: Span[][] };

/** A link target we are willing to render, or null. */
export function safeHref(url: string): string | null {
  const u = url.trim();
  if (/^(?:https?:\/\/|mailto:|tel:)/i.test(u) && !/[\s<>"]/.test(u)) return u;
  if (/^www\.[^\s<>"]+$/i.test(u)) return 'https://' + u;
  return null;
}

const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}\d{1,9}[.)]\s+(.*)$/;

/** Splits a text into paragraphs and lists, and each line into styled spans. */
export function parseRich(source: string): Block[] {
  const out: Block[] = [];
  const paras = source.replace(/\r\n?/g, '\n').split(/\n[ \t]*\n/);
  for (const para of paras) {
    const lines = para.split('\n');
    let cur: Block | null = null;
    for (const line of lines) {
      const bullet = BULLET.exec(line);
      const numbered = bullet ? null : NUMBERED.exec(line);
      if (bullet || numbered) {
        const kind = bullet ? 'ul' : 'ol';
        if (!cur || cur.kind !== kind) out.push((cur = { kind, items: [] }));
        cur.items.push(parseInline((bullet ?? numbered)![1]));
      } else if (line.trim() === '') {
        continue;
      } else if (cur && cur.kind !== 'p' && /^\s+\S/.test(line)) {
        // An indented line continues the list item above it.
        const items = cur.items;
        items[items.length - 1] = [...items[items.length - 1], { text: ' ' }, ...parseInline(line.trim())];
      } else {
        if (!cur || cur.kind !== 'p') out.push((cur = { kind: 'p', lines: [] }));
        cur.lines.push(parseInline(line));
      }
    }
  }
  return out;
}

/** Styled spans of one line. */
export function parseInline(text: string): Span[] {
  return merge(inline(text, {}));
}

function isWordChar(c: string | undefined): boolean {
  return !!c && /[\p{L}\p{N}]/u.test(c);
}

function inline(text: string, style: Style): Span[] {
  const out: Span[] = [];
  let plain = '';
  const flush = () => {
    if (!plain) return;
    if (style.href) out.push({ ...style, text: plain });
    else for (const seg of linkify(plain)) out.push(seg.href ? { ...style, text: seg.text, href: seg.href } : { ...style, text: seg.text });
    plain = '';
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    // `code`: literal inside.
    if (c === '`') {
      const end = text.indexOf('`', i + 1);
      if (end > i + 1) {
        flush();
        out.push({ ...style, code: true, text: text.slice(i + 1, end) });
        i = end + 1;
        continue;
      }
    }
    // [label](url) and ![alt](url) (an image is shown as a link to it).
    if (c === '[' || (c === '!' && text[i + 1] === '[')) {
      const m = /^!?\[([^\]\n]*)\]\(\s*<?([^()\s<>]+)>?(?:\s+"[^"]*")?\s*\)/.exec(rest);
      if (m && !style.href) {
        const href = safeHref(m[2]);
        flush();
        const label = m[1] || m[2];
        if (href) out.push(...inline(label, { ...style, href }));
        else out.push(...inline(label, style));
        i += m[0].length;
        continue;
      }
    }
    // **bold**, __bold__, ~~struck~~
    const two = rest.slice(0, 2);
    if (two === '**' || two === '__' || two === '~~') {
      const end = findCloser(text, i + 2, two);
      if (end > 0) {
        flush();
        const key = two === '~~' ? 's' : 'b';
        out.push(...inline(text.slice(i + 2, end), { ...style, [key]: true }));
        i = end + 2;
        continue;
      }
    }
    // *italic*, _italic_ (underscores only between words, as in snake_case they are not)
    if ((c === '*' || c === '_') && text[i + 1] !== c && !/\s/.test(text[i + 1] ?? ' ') && !(c === '_' && isWordChar(text[i - 1]))) {
      const end = findCloser(text, i + 1, c);
      if (end > 0 && !(c === '_' && isWordChar(text[end + 1]))) {
        flush();
        out.push(...inline(text.slice(i + 1, end), { ...style, i: true }));
        i = end + 1;
        continue;
      }
    }
    // A backslash escapes the next punctuation mark.
    if (c === '\\' && /[\\`*_~[\]()!]/.test(text[i + 1] ?? '')) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    plain += c;
    i++;
  }
  flush();
  return out;
}

/** The index of a closing `marker` after `from` with non-space text before it, or -1. */
function findCloser(text: string, from: number, marker: string): number {
  if (from >= text.length || /\s/.test(text[from])) return -1;
  let j = from;
  while ((j = text.indexOf(marker, j + 1)) > 0) {
    if (!/\s/.test(text[j - 1]) && !(marker.length === 1 && text[j + 1] === marker)) return j;
  }
  return -1;
}

/** Joins neighbouring spans with the same style. */
function merge(spans: Span[]): Span[] {
  const out: Span[] = [];
  for (const s of spans) {
    if (!s.text) continue;
    const last = out[out.length - 1];
    if (last && last.href === s.href && !!last.b === !!s.b && !!last.i === !!s.i && !!last.s === !!s.s && !!last.code === !!s.code) last.text += s.text;
    else out.push({ ...s });
  }
  return out;
}
