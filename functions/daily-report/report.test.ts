import { describe, expect, it } from 'vitest';
import { previousUtcDay } from './report';

describe('previousUtcDay', () => {
  it.each([
    ['2026-11-25T01:00:00Z', '2026-11-24'],
    ['2026-03-01T00:00:00Z', '2026-02-28'],
    ['2028-03-01T00:30:00Z', '2028-02-29'],
    ['2027-01-01T01:00:00Z', '2026-12-31'],
  ])('the day before %s is %s (UTC)', (at, day) => {
    expect(previousUtcDay(Date.parse(at))).toBe(day);
  });
});
