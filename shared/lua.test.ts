import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as breaker from './breaker';
import * as counters from './counters';
import * as limiter from './limiter';
import * as lua from './lua';

const scripts = { ...lua, ...breaker, ...limiter, ...counters };

describe('Lua scripts', () => {
  const pinned = Object.values(scripts).filter((v): v is lua.LuaScript => typeof v === 'object' && v !== null && 'sha1' in v && 'source' in v);
  it('has scripts to check', () => expect(pinned.length).toBeGreaterThan(0));
  it.each(pinned.map((s) => [s.name, s] as const))('%s: pinned SHA-1 matches its source', (_, s) => {
    expect(s.sha1).toBe(createHash('sha1').update(s.source).digest('hex'));
  });
});
