import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './env';

const good = {
  SUPABASE_URL: 'http://127.0.0.1:54321',
  SUPABASE_SERVICE_ROLE_KEY: 'service',
  UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:8079',
  UPSTASH_REDIS_REST_TOKEN: 'token',
  ADMIN_API_KEY: 'a-long-enough-admin-key',
};

describe('loadConfig', () => {
  it('parses and defaults the key prefix', () => {
    expect(loadConfig({ ...good }).REDIS_KEY_PREFIX).toBe('ie');
  });
  it('fails loudly, naming every missing or bad secret (an empty value counts as missing)', () => {
    try {
      loadConfig({ ...good, SUPABASE_URL: '', ADMIN_API_KEY: 'short' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain('SUPABASE_URL is not set');
      expect((err as Error).message).toContain('ADMIN_API_KEY must be at least 16 characters');
    }
  });
});
