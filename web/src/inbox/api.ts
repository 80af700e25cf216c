// HTTP for the inbox: cookie session + X-CSRF-Token on every non-GET request. Callers name
// the reply's type from src/shared/wire.ts (generated from the server's OpenAPI document).
import type { ErrorBody } from '../shared/wire';

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let csrf: string | null = null;
export function setCsrf(token: string | null | undefined): void {
  csrf = token ?? null;
}

/** Called when a request finds the session gone (401). */
let onUnauthorized: () => void = () => undefined;
export function setOnUnauthorized(f: () => void): void {
  onUnauthorized = f;
}

export async function api<R = unknown>(method: string, path: string, body?: unknown, raw?: Blob): Promise<R> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let payload: BodyInit | undefined;
  if (raw) {
    payload = raw;
    headers['Content-Type'] = raw.type || 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch('/api/v1' + path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const err = (data as Partial<ErrorBody> | null)?.error;
    if (res.status === 401 && path !== '/auth/login') onUnauthorized();
    throw new ApiError(res.status, err?.code || 'http_' + res.status, err?.message || res.statusText || 'Request failed');
  }
  return data as R;
}
