import { describe, expect, it } from 'vitest';
import { parseInline, parseRich, safeHref } from '../src/shared/rich';

describe('rich text for agent and bot messages', () => {
  it('formats bold, italic, struck and code', () => {
    expect(parseInline('a **b** _c_ *d* ~~e~~ `f*g*`')).toEqual([
      { text: 'a ' }, { text: 'b', b: true }, { text: ' ' }, { text: 'c', i: true }, { text: ' ' }, { text: 'd', i: true },
      { text: ' ' }, { text: 'e', s: true }, { text: ' ' }, { text: 'f*g*', code: true },
    ]);
    expect(parseInline('**bold _and italic_**')).toEqual([{ text: 'bold ', b: true }, { text: 'and italic', b: true, i: true }]);
  });
  it('leaves snake_case, lone stars and spaced markers alone', () => {
    expect(parseInline('snake_case_name and 2 * 3 * 4')).toEqual([{ text: 'snake_case_name and 2 * 3 * 4' }]);
    expect(parseInline('** not bold **')).toEqual([{ text: '** not bold **' }]);
  });
  it('makes safe links only', () => {
    expect(parseInline('see [the docs](https://example.com/a?b=1) now')).toEqual([
      { text: 'see ' }, { text: 'the docs', href: 'https://example.com/a?b=1' }, { text: ' now' },
    ]);
    expect(parseInline('[x](javascript:alert(1))').some((s) => s.href)).toBe(false);
    expect(parseInline('[x](data:text/html,hi)').some((s) => s.href)).toBe(false);
    expect(parseInline('go to www.example.com.')).toEqual([{ text: 'go to ' }, { text: 'www.example.com', href: 'https://www.example.com' }, { text: '.' }]);
    expect(safeHref('mailto:a@b.c')).toBe('mailto:a@b.c');
    expect(safeHref(' JavaScript:alert(1)')).toBe(null);
    expect(safeHref('/relative')).toBe(null);
  });
  it('keeps markup as text (the view never uses innerHTML)', () => {
    expect(parseInline('<img src=x onerror=alert(1)>')).toEqual([{ text: '<img src=x onerror=alert(1)>' }]);
  });
  it('splits paragraphs, line breaks and lists', () => {
    const blocks = parseRich('Hi!\nHow are you?\n\n- one\n- **two**\n\n1. first\n2. second');
    expect(blocks).toEqual([
      { kind: 'p', lines: [[{ text: 'Hi!' }], [{ text: 'How are you?' }]] },
      { kind: 'ul', items: [[{ text: 'one' }], [{ text: 'two', b: true }]] },
      { kind: 'ol', items: [[{ text: 'first' }], [{ text: 'second' }]] },
    ]);
  });
  it('honours backslash escapes', () => {
    expect(parseInline('\\*not italic\\*')).toEqual([{ text: '*not italic*' }]);
  });
});
