// Splits plain text into text and link segments, so links can be rendered as DOM nodes
// (never through innerHTML). Only http(s) and www. links become links.

export type Segment = { text: string; href?: string };

const URL_RE = /\b((?:https?:\/\/|www\.)[^\s<>"']+)/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

export function linkify(text: string): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  URL_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = URL_RE.exec(text))) {
    let url = m[1];
    const trail = TRAILING.exec(url);
    // Keep a closing bracket that has a matching opener inside the URL.
    if (trail && !(trail[0] === ')' && url.indexOf('(') >= 0)) url = url.slice(0, url.length - trail[0].length);
    if (!url) continue;
    const start = m.index;
    if (start > last) out[out.length] = { text: text.slice(last, start) };
    const href = /^www\./i.test(url) ? 'https://' + url : url;
    out[out.length] = { text: url, href };
    last = start + url.length;
    URL_RE.lastIndex = last;
  }
  if (last < text.length) out[out.length] = { text: text.slice(last) };
  return out;
}

/** Human file size: 10485760 → "10 MB". */
export function formatBytes(n: number): string {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return Math.round(n / 1024) + ' KB';
  const mb = n / (1024 * 1024);
  return (mb >= 10 || mb === Math.floor(mb) ? Math.round(mb) : Math.round(mb * 10) / 10) + ' MB';
}
