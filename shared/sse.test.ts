import { describe, expect, it } from 'vitest';
import { parseSse } from './sse';

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}
const collect = async (chunks: string[]) => {
  const out = [];
  for await (const e of parseSse(streamOf(chunks))) out.push(e);
  return out;
};

describe('parseSse', () => {
  it('parses events split anywhere, including inside CRLF and multi-byte characters', async () => {
    const text = 'event: a\r\ndata: {"x":"héllo"}\r\n\r\ndata: second\n\n';
    const bytes = new TextEncoder().encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const s = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bytes.slice(0, cut));
          c.enqueue(bytes.slice(cut));
          c.close();
        },
      });
      const out = [];
      for await (const e of parseSse(s)) out.push(e);
      expect(out, `cut at ${cut}`).toEqual([{ event: 'a', data: '{"x":"héllo"}' }, { data: 'second' }]);
    }
  });

  it('skips comments and keep-alives, joins multi-line data, drops empty events', async () => {
    expect(await collect([': keep-alive\n\n', 'data: line1\ndata: line2\n\n', 'event: ping\n\n', 'data:nospace\n\n'])).toEqual([
      { data: 'line1\nline2' },
      { data: 'nospace' },
    ]);
  });

  it('handles lone CR line endings and a last event without its blank line', async () => {
    expect(await collect(['data: one\r\rdata: two'])).toEqual([{ data: 'one' }, { data: 'two' }]);
  });
});
