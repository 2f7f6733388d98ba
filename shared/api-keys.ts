/** Deployment API keys: `pk_` (publishable, browsers) and `sk_` (secret, servers), `test` or `live`. */
export type KeyKind = 'publishable' | 'secret';
export type Environment = 'sandbox' | 'production';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const KEY_BODY_LENGTH = 32; // 62^32 ≈ 2^190
const KEY_PATTERN = /^(pk|sk)_(test|live)_[A-Za-z0-9]{32}$/;
export const KEY_PREFIX_LENGTH = 12;

export interface ParsedKey {
  kind: KeyKind;
  environment: Environment;
}

/** Reads kind and environment from a key's shape; null if it is not one of our keys. */
export function parseApiKey(key: string): ParsedKey | null {
  const m = KEY_PATTERN.exec(key);
  if (!m) return null;
  return { kind: m[1] === 'pk' ? 'publishable' : 'secret', environment: m[2] === 'live' ? 'production' : 'sandbox' };
}

export function generateApiKey(kind: KeyKind, environment: Environment): string {
  const out: string[] = [];
  // Rejection sampling keeps every character uniform (256 is not a multiple of 62).
  while (out.length < KEY_BODY_LENGTH) {
    for (const b of crypto.getRandomValues(new Uint8Array(48))) {
      if (b < 248 && out.length < KEY_BODY_LENGTH) out.push(ALPHABET[b % 62]!);
    }
  }
  return `${kind === 'publishable' ? 'pk' : 'sk'}_${environment === 'production' ? 'live' : 'test'}_${out.join('')}`;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Compares two secrets in time independent of where they differ (and of their lengths). */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [x, y] = await Promise.all([
    crypto.subtle.digest('SHA-256', enc.encode(a)),
    crypto.subtle.digest('SHA-256', enc.encode(b)),
  ]);
  const u = new Uint8Array(x);
  const v = new Uint8Array(y);
  let diff = 0;
  for (let i = 0; i < u.length; i++) diff |= u[i]! ^ v[i]!;
  return diff === 0;
}

export interface NewKey {
  kind: KeyKind;
  key: string;
  keyHash: string;
  prefix: string;
}

/** A fresh publishable + secret pair: the keys to show once, the hashes and prefixes to store. */
export async function newKeyPair(environment: Environment): Promise<NewKey[]> {
  return Promise.all(
    (['publishable', 'secret'] as const).map(async (kind) => {
      const key = generateApiKey(kind, environment);
      return { kind, key, keyHash: await sha256Hex(key), prefix: key.slice(0, KEY_PREFIX_LENGTH) };
    }),
  );
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m ? m[1]! : null;
}
