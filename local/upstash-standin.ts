import { createHash } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { close, listen, readBody } from './net';

/**
 * Test and dev plumbing, not product code: the Upstash Redis REST protocol over a real Redis, so the
 * Workers run the real @upstash/redis client locally. Covers POST / (one command), /pipeline and
 * /multi-exec, Bearer auth, and `Upstash-Encoding: base64` (the client decodes every string reply).
 * `GET /_stats` (same token) counts what arrived: HTTP round trips and commands, as Upstash bills them.
 */
export interface UpstashStandIn {
  url: string;
  token: string;
  stop(): Promise<void>;
}

type Reply = null | number | Buffer | Reply[] | Error;

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

export async function startUpstashStandIn(redisUrl: string, token: string): Promise<UpstashStandIn> {
  // No offline queue: while Redis is down a command fails at once, as Upstash answers an error.
  const redis = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: false });
  redis.on('error', () => {});
  // Redis 7.0 rejects `#!lua flags=allow-key-locking` (a 7.2 flag @upstash/ratelimit sets): strip
  // unknown shebang flags and remember which sha the client knows the script by.
  const shaAlias = new Map<string, string>();
  const compatScript = (script: string): string => {
    const m = /^#!lua(?:[ \t]+flags=([^\n]*))?\n/.exec(script);
    if (!m) return script;
    const flags = (m[1] ?? '').split(',').map((f) => f.trim()).filter((f) => f && f !== 'allow-key-locking');
    const fixed = `#!lua${flags.length ? ` flags=${flags.join(',')}` : ''}\n${script.slice(m[0].length)}`;
    if (fixed !== script) shaAlias.set(sha1(script), sha1(fixed));
    return fixed;
  };

  const run = async (command: unknown[]): Promise<Reply> => {
    const [name, ...rawArgs] = command.map((a) => (typeof a === 'string' ? a : JSON.stringify(a)));
    if (!name) return new Error('ERR empty command');
    const upper = name.toUpperCase();
    const args = [...rawArgs];
    if ((upper === 'EVAL' || upper === 'EVAL_RO') && args[0]) args[0] = compatScript(args[0]);
    if ((upper === 'EVALSHA' || upper === 'EVALSHA_RO') && args[0]) args[0] = shaAlias.get(args[0]) ?? args[0];
    if (upper === 'SCRIPT' && args[0]?.toUpperCase() === 'LOAD' && args[1]) {
      const original = args[1];
      await redis.call('SCRIPT', 'LOAD', compatScript(original));
      return Buffer.from(sha1(original)); // the client expects the sha of what it sent
    }
    try {
      return (await redis.callBuffer(upper, ...args)) as Reply;
    } catch (err) {
      return err as Error;
    }
  };

  const encode = (reply: Reply, base64: boolean): unknown => {
    if (reply === null || typeof reply === 'number') return reply;
    if (Buffer.isBuffer(reply)) return base64 ? reply.toString('base64') : reply.toString('utf8');
    if (Array.isArray(reply)) return reply.map((r) => encode(r, base64));
    return reply;
  };
  const envelope = (reply: Reply, base64: boolean) =>
    reply instanceof Error ? { error: reply.message } : { result: encode(reply, base64) };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const stats = { requests: 0, commands: 0, byCommand: {} as Record<string, number> };
  const count = (cmd: unknown[]) => {
    const name = String(cmd[0] ?? '').toUpperCase();
    stats.byCommand[name] = (stats.byCommand[name] ?? 0) + 1;
  };
  const server = createServer(async (req, res) => {
    try {
      if (req.headers.authorization !== `Bearer ${token}`) return send(res, 401, { error: 'Unauthorized' });
      if (req.method === 'GET' && req.url === '/_stats') return send(res, 200, stats);
      if (req.method !== 'POST') return send(res, 405, { error: 'only POST is supported' });
      const base64 = String(req.headers['upstash-encoding'] ?? '').toLowerCase() === 'base64';
      const body = JSON.parse(await readBody(req)) as unknown;
      if (redis.status !== 'ready') return send(res, 503, { error: `redis unavailable (${redis.status})` });
      const path = (req.url ?? '/').split('?')[0];
      stats.requests++;
      if (path === '/pipeline' || path === '/multi-exec') {
        if (!Array.isArray(body) || !body.every(Array.isArray)) return send(res, 400, { error: 'body must be an array of commands' });
        stats.commands += body.length;
        for (const cmd of body as unknown[][]) count(cmd);
        if (path === '/multi-exec') {
          const multi = redis.multi();
          for (const cmd of body as unknown[][]) {
            const [name, ...args] = cmd.map(String);
            multi.callBuffer(name!, ...args);
          }
          const results = (await multi.exec()) ?? [];
          return send(res, 200, results.map(([err, r]) => envelope(err ?? (r as Reply), base64)));
        }
        const replies = await Promise.all((body as unknown[][]).map(run));
        return send(res, 200, replies.map((r) => envelope(r, base64)));
      }
      if (!Array.isArray(body)) return send(res, 400, { error: 'body must be a command array like ["GET","key"]' });
      stats.commands++;
      count(body);
      const reply = await run(body);
      return send(res, reply instanceof Error ? 400 : 200, envelope(reply, base64));
    } catch (err) {
      send(res, 500, { error: (err as Error).message });
    }
  });
  const url = await listen(server);
  return {
    url,
    token,
    async stop() {
      await close(server);
      redis.disconnect();
    },
  };
}
