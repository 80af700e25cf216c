// Agent and bot texts with their Markdown-ish formatting, built as DOM nodes from
// shared/rich.ts (never innerHTML), the way the widget shows them to the visitor.
import { Fragment, type ComponentChildren } from 'preact';
import { parseRich, type Span } from '../shared/rich';

function SpanView(props: { s: Span }) {
  const s = props.s;
  let node: ComponentChildren = s.text;
  if (s.code) node = <code>{node}</code>;
  if (s.s) node = <del>{node}</del>;
  if (s.i) node = <em>{node}</em>;
  if (s.b) node = <strong>{node}</strong>;
  if (s.href) node = <a href={s.href} target="_blank" rel="noopener noreferrer nofollow">{node}</a>;
  return <>{node}</>;
}

function Line(props: { spans: Span[] }) {
  return <>{props.spans.map((s, i) => <SpanView key={i} s={s} />)}</>;
}

export function RichText(props: { text: string }) {
  const blocks = parseRich(props.text);
  return (
    <>
      {blocks.map((b, i) => {
        if (b.kind === 'p') return <p key={i}>{b.lines.map((l, j) => <Fragment key={j}>{j > 0 && <br />}<Line spans={l} /></Fragment>)}</p>;
        const items = b.items.map((l, j) => <li key={j}><Line spans={l} /></li>);
        return b.kind === 'ul' ? <ul key={i}>{items}</ul> : <ol key={i}>{items}</ol>;
      })}
    </>
  );
}
