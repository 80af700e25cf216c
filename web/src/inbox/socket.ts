// The agent WebSocket with reconnects (exponential backoff with jitter, capped at 10 s),
// re-subscription with `after` = last seq, and a state that never lies: "open" only between
// the server's `ready` and the socket's close.
import { backoffDelay } from '../shared/state';
import type { AgentClientFrame, AgentServerFrame } from '../shared/wire';

export type SocketState = 'connecting' | 'open' | 'reconnecting';

export class AgentSocket {
  state: SocketState = 'connecting';
  private ws: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pongDeadline: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  /** Conversation id → the seq to subscribe after (asked at (re)subscribe time). */
  private subs = new Map<number, () => number>();

  constructor(
    private onFrame: (f: AgentServerFrame) => void,
    private onState: (s: SocketState) => void,
    private onAuthLost: () => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.open();
    if (!this.pingTimer) {
      this.pingTimer = setInterval(() => {
        if (this.state !== 'open' || this.pongDeadline) return;
        this.send({ type: 'ping' });
        this.pongDeadline = setTimeout(() => this.drop(), 8000);
      }, 20000);
    }
    window.addEventListener('online', this.wake);
    window.addEventListener('offline', this.offline);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    window.removeEventListener('online', this.wake);
    window.removeEventListener('offline', this.offline);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.close();
    }
  }

  send(f: AgentClientFrame): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(f));
    return true;
  }

  subscribe(id: number, after: () => number): void {
    this.subs.set(id, after);
    if (this.state === 'open') this.send({ type: 'subscribe', conversation_id: id, after: after() });
  }

  unsubscribe(id: number): void {
    if (!this.subs.delete(id)) return;
    if (this.state === 'open') this.send({ type: 'unsubscribe', conversation_id: id });
  }

  private wake = () => {
    this.attempt = 0;
    if (this.state !== 'open') {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      if (!this.ws) this.open();
    }
  };

  private offline = () => this.drop();

  private setState(s: SocketState) {
    if (this.state !== s) {
      this.state = s;
      this.onState(s);
    }
  }

  private open(): void {
    if (this.stopped || this.ws) return;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/ws';
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    // The session cookie authenticates at the upgrade and the server says `ready` at once;
    // a `hello` is only for API tokens (or to ask for a fresh `ready`).
    ws.onmessage = (e) => {
      if (this.pongDeadline) clearTimeout(this.pongDeadline);
      this.pongDeadline = null;
      let f: AgentServerFrame;
      try {
        f = JSON.parse(String(e.data)) as AgentServerFrame;
      } catch {
        return;
      }
      if (f.type === 'ready') {
        this.attempt = 0;
        this.setState('open');
        for (const [id, after] of this.subs) this.send({ type: 'subscribe', conversation_id: id, after: after() });
      }
      if (f.type === 'resync') {
        // Missed events: resume from our last seqs on a fresh connection.
        this.attempt = 0;
        this.drop();
        return;
      }
      this.onFrame(f);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (e.code === 4401 || e.code === 4408) {
        this.setState('reconnecting');
        this.onAuthLost();
        return;
      }
      this.setState('reconnecting');
      this.schedule();
    };
    ws.onerror = () => undefined;
  }

  /** Forget the current socket (dead or resync) and reconnect. */
  private drop(): void {
    if (this.pongDeadline) clearTimeout(this.pongDeadline);
    this.pongDeadline = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    }
    this.setState('reconnecting');
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    const delay = backoffDelay(this.attempt++);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }
}
