/**
 * Structured JSON logs. Callers pass metadata only: ids, sizes, categories, latencies.
 * Never keys, prompts or completions (the field names below are refused as a backstop).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const FORBIDDEN = new Set(['authorization', 'apikey', 'key', 'secret', 'token', 'prompt', 'messages', 'completion', 'content']);

export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  const entry: Record<string, unknown> = { level, event, time: new Date().toISOString() };
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) entry[k] = FORBIDDEN.has(k.toLowerCase()) ? '[redacted]' : v;
  }
  const line = JSON.stringify(entry);
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
}
