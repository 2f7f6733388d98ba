import { describe, expect, it } from 'vitest';
import { constantTimeEqual, generateApiKey, newKeyPair, parseApiKey, sha256Hex } from './api-keys';

describe('api keys', () => {
  it('generates keys whose shape says kind and environment', () => {
    const sk = generateApiKey('secret', 'production');
    const pk = generateApiKey('publishable', 'sandbox');
    expect(sk).toMatch(/^sk_live_[A-Za-z0-9]{32}$/);
    expect(pk).toMatch(/^pk_test_[A-Za-z0-9]{32}$/);
    expect(parseApiKey(sk)).toEqual({ kind: 'secret', environment: 'production' });
    expect(parseApiKey(pk)).toEqual({ kind: 'publishable', environment: 'sandbox' });
  });

  it('never repeats a key and uses the whole alphabet', () => {
    const keys = new Set(Array.from({ length: 2000 }, () => generateApiKey('secret', 'sandbox')));
    expect(keys.size).toBe(2000);
    const chars = new Set([...keys].flatMap((k) => [...k.slice(8)]));
    expect(chars.size).toBe(62);
  });

  it('refuses what is not one of our keys', () => {
    for (const bad of ['', 'sk_test_short', 'xk_test_' + 'a'.repeat(32), 'sk_prod_' + 'a'.repeat(32), 'sk_test_' + 'a'.repeat(31) + '!', 'sk_test_' + 'a'.repeat(33)]) {
      expect(parseApiKey(bad)).toBeNull();
    }
  });

  it('hashes with SHA-256 (hex)', async () => {
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('makes a pair with hashes and 12-character display prefixes', async () => {
    const pair = await newKeyPair('sandbox');
    expect(pair.map((k) => k.kind)).toEqual(['publishable', 'secret']);
    for (const k of pair) {
      expect(k.keyHash).toBe(await sha256Hex(k.key));
      expect(k.prefix).toBe(k.key.slice(0, 12));
    }
  });

  it('compares secrets exactly, whatever their lengths', async () => {
    expect(await constantTimeEqual('same-secret-value', 'same-secret-value')).toBe(true);
    expect(await constantTimeEqual('same-secret-value', 'same-secret-valuE')).toBe(false);
    expect(await constantTimeEqual('short', 'a much longer secret')).toBe(false);
    expect(await constantTimeEqual('', 'x')).toBe(false);
  });
});
