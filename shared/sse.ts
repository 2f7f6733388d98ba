import type { SseEvent } from './openai-types';

/**
 * Incremental Server-Sent Events parser (the WHATWG event-stream rules): events may be split across
 * network chunks anywhere, lines end in LF, CR or CRLF, `:` lines are comments (keep-alives), `data:`
 * lines of one event are joined with "\n", and an event without data is dropped.
 */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];
  let event: string | undefined;
  let pendingCR = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let text = decoder.decode(value, { stream: true });
      // A CR at the end of the previous chunk may be the first half of a CRLF.
      if (pendingCR && text.startsWith('\n')) text = text.slice(1);
      pendingCR = text.endsWith('\r');
      buffer += text;
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const ch = buffer.charCodeAt(i);
        if (ch !== 10 && ch !== 13) continue;
        const line = buffer.slice(start, i);
        if (ch === 13 && buffer.charCodeAt(i + 1) === 10) i++;
        start = i + 1;
        if (line === '') {
          if (data.length) yield event === undefined ? { data: data.join('\n') } : { event, data: data.join('\n') };
          data = [];
          event = undefined;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'data') data.push(val);
        else if (field === 'event') event = val;
      }
      buffer = buffer.slice(start);
    }
    // A final event without its blank line still counts (some servers end that way).
    if (buffer !== '' && buffer.startsWith('data:')) data.push(buffer.slice(5).replace(/^ /, ''));
    if (data.length) yield event === undefined ? { data: data.join('\n') } : { event, data: data.join('\n') };
  } finally {
    reader.releaseLock();
  }
}

const encoder = new TextEncoder();
/** One SSE `data:` event as bytes. */
export const sseData = (payload: unknown): Uint8Array => encoder.encode(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
