// Fails when dist/widget.js is over 25 KB gzipped (W1: small and fast to load).
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const LIMIT = 25 * 1024;
const file = new URL('../dist/widget.js', import.meta.url);
let buf;
try {
  buf = readFileSync(file);
} catch {
  console.error('dist/widget.js not found: run `npm run build` first');
  process.exit(1);
}
const gz = gzipSync(buf, { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1) + ' KB';
console.log(`dist/widget.js: ${kb(buf.length)} raw, ${kb(gz)} gzipped (limit ${kb(LIMIT)})`);
if (gz > LIMIT) {
  console.error('widget.js is over the size limit');
  process.exit(1);
}
