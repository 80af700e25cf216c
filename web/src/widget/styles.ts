// All of the widget's CSS, injected into its shadow root. px units only (rem would follow
// the host page's root font size).
export const CSS = `
:host{all:initial}
*{box-sizing:border-box;margin:0;padding:0;font:inherit;color:inherit;letter-spacing:normal;text-transform:none;text-align:left}
.root{--a:#4f46e5;--a2:#4338ca;--fg:#111827;--mu:#6b7280;--bd:#e5e7eb;--bg:#fff;--sf:#f3f4f6;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);-webkit-font-smoothing:antialiased}
button{cursor:pointer;border:0;background:none;text-align:center}
button:focus-visible,a:focus-visible,textarea:focus-visible,input:focus-visible{outline:2px solid var(--a);outline-offset:2px}
a{color:var(--a);text-decoration:underline}
[hidden]{display:none!important}
.launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;background:var(--a);color:#fff;box-shadow:0 6px 20px rgba(17,24,39,.25);display:flex;align-items:center;justify-content:center;transition:transform .15s}
.launcher:hover{transform:scale(1.06);background:var(--a2)}
.launcher svg{width:26px;height:26px;fill:#fff}
.badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#dc2626;color:#fff;font-size:12px;font-weight:600;line-height:20px;text-align:center}
.win{position:fixed;right:20px;bottom:88px;width:376px;height:min(640px,calc(100vh - 108px));background:var(--bg);border-radius:16px;box-shadow:0 12px 48px rgba(17,24,39,.22);display:flex;flex-direction:column;overflow:hidden;border:1px solid var(--bd)}
.hd{display:flex;align-items:center;gap:12px;padding:14px 12px 14px 16px;background:var(--a);color:#fff}
.av{width:36px;height:36px;border-radius:50%;background:rgba(255,255,255,.2);display:flex;align-items:center;justify-content:center;font-weight:600;flex:none;overflow:hidden;position:relative}
.av img{width:100%;height:100%;object-fit:cover}
.dot{position:absolute;right:0;bottom:0;width:10px;height:10px;border-radius:50%;border:2px solid var(--a);background:#9ca3af}
.dot.on{background:#22c55e}
.hd .who{flex:1;min-width:0}
.hd h2{font-size:15px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.hd p{font-size:12px;opacity:.85}
.ib{width:32px;height:32px;border-radius:8px;display:flex;align-items:center;justify-content:center;color:inherit}
.ib:hover{background:rgba(0,0,0,.08)}
.hd .ib:hover{background:rgba(255,255,255,.16)}
.ib svg{width:18px;height:18px;fill:currentColor}
.txtbtn{font-size:12px;padding:6px 8px;border-radius:8px;color:#fff;background:rgba(255,255,255,.14)}
.txtbtn:hover{background:rgba(255,255,255,.24)}
.conn{padding:6px 12px;background:#fef3c7;color:#92400e;font-size:12px;text-align:center}
.body{flex:1;overflow-y:auto;padding:16px;display:flex;flex-direction:column;gap:6px;background:#fafafa;position:relative}
.intro{background:var(--bg);border:1px solid var(--bd);border-radius:12px;padding:12px 14px;margin-bottom:8px;display:flex;flex-direction:column;gap:8px}
.intro .legal{font-size:12px;color:var(--mu)}
.rich p{margin:0 0 6px}.rich p:last-child{margin:0}.rich ul,.rich ol{padding-left:20px;margin:4px 0}.rich img{max-width:100%;border-radius:8px}
.rich strong,.rich b{font-weight:600}.rich em,.rich i{font-style:italic}
.status{font-size:13px;color:var(--mu)}
.meet{display:inline-block;align-self:flex-start;padding:6px 12px;border-radius:8px;border:1px solid var(--a);color:var(--a);text-decoration:none;font-weight:500;font-size:13px}
.row{display:flex;flex-direction:column;max-width:82%}
.row.me{align-self:flex-end;align-items:flex-end}
.row.them{align-self:flex-start}
.name{font-size:11px;color:var(--mu);margin:6px 4px 2px}
.bub{padding:8px 12px;border-radius:16px;white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere}
.me .bub{background:var(--a);color:#fff;border-bottom-right-radius:4px}
.me .bub a{color:#fff}
.them .bub{background:var(--bg);border:1px solid var(--bd);border-bottom-left-radius:4px;white-space:normal}
.them .bub.plain{white-space:pre-wrap}
.meta{font-size:11px;color:var(--mu);margin:2px 4px}
.meta.err{color:#b91c1c}
.pending .bub{opacity:.65}
.ev{align-self:center;font-size:12px;color:var(--mu);padding:4px 10px;margin:6px 0;background:var(--sf);border-radius:999px;text-align:center}
.ev.rich{border-radius:12px;max-width:90%}
.att img{display:block;max-width:220px;max-height:220px;border-radius:10px;margin-top:2px}
.file{display:inline-flex;align-items:center;gap:6px;padding:8px 10px;border-radius:10px;background:var(--sf);color:var(--fg);text-decoration:none;font-size:13px}
.me .file{background:rgba(255,255,255,.18);color:#fff}
.typing{font-size:12px;color:var(--mu);padding:2px 4px;display:flex;align-items:center;gap:6px}
.dots span{display:inline-block;width:6px;height:6px;margin-right:3px;border-radius:50%;background:#9ca3af;animation:b 1.2s infinite}
.dots span:nth-child(2){animation-delay:.2s}.dots span:nth-child(3){animation-delay:.4s}
@keyframes b{0%,60%,100%{transform:translateY(0);opacity:.5}30%{transform:translateY(-3px);opacity:1}}
.card{background:var(--bg);border:1px solid var(--bd);border-radius:12px;padding:12px 14px;display:flex;flex-direction:column;gap:8px;margin-top:8px}
.card h3{font-size:14px;font-weight:600}
.rate{display:flex;gap:8px}
.rate button{flex:1;padding:8px;border-radius:8px;border:1px solid var(--bd);background:var(--bg);font-size:13px}
.rate button[aria-pressed=true]{border-color:var(--a);background:#eef2ff;color:var(--a2);font-weight:600}
.in{width:100%;border:1px solid var(--bd);border-radius:8px;padding:8px 10px;background:var(--bg);font-size:13px}
.btn{padding:8px 14px;border-radius:8px;background:var(--a);color:#fff;font-weight:600;font-size:13px}
.btn:hover{background:var(--a2)}
.btn:disabled{opacity:.5;cursor:default}
.btn.sec{background:var(--bg);color:var(--a);border:1px solid var(--a)}
.ft{border-top:1px solid var(--bd);padding:10px 12px;background:var(--bg)}
.consent{display:flex;gap:8px;align-items:flex-start;font-size:12px;color:var(--mu);margin-bottom:8px}
.consent input{margin-top:2px;accent-color:var(--a)}
.note{font-size:12px;color:#b91c1c;margin-bottom:6px}
.comp{display:flex;align-items:flex-end;gap:4px}
.comp textarea{flex:1;resize:none;border:1px solid var(--bd);border-radius:12px;padding:9px 12px;max-height:120px;min-height:40px;background:var(--bg);font-size:14px;line-height:20px}
.comp .ib{color:var(--mu)}
.comp .ib:hover{color:var(--a);background:var(--sf)}
.comp .sendb{background:var(--a);color:#fff;border-radius:50%;width:38px;height:38px}
.comp .sendb:hover{background:var(--a2);color:#fff}
.hint{font-size:11px;color:var(--mu);margin-top:6px}
.emo{position:absolute;bottom:72px;left:12px;right:12px;background:var(--bg);border:1px solid var(--bd);border-radius:12px;box-shadow:0 8px 24px rgba(0,0,0,.12);padding:8px;display:grid;grid-template-columns:repeat(8,1fr);gap:2px}
.emo button{font-size:20px;padding:4px;border-radius:6px}
.emo button:hover,.emo button:focus{background:var(--sf)}
.drop{position:absolute;inset:0;background:rgba(79,70,229,.08);border:2px dashed var(--a);border-radius:16px;display:flex;align-items:center;justify-content:center;color:var(--a2);font-weight:600;pointer-events:none}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:480px){.win{right:0;bottom:0;width:100vw;height:100%;border-radius:0;border:0}.launcher{right:16px;bottom:16px}.root.isopen .launcher{display:none}}
@media (prefers-reduced-motion:reduce){.dots span{animation:none}.launcher{transition:none}}
`;
