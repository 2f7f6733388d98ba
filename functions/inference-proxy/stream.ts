import { log } from '../../shared/log';
import type { Usage } from '../../shared/openai-types';
import { ProviderError } from '../../shared/providers/types';
import { sseData } from '../../shared/sse';
import type { Answer } from './dispatch';

/** How a relayed stream ended: what was said, and the failure that cut it (null when it completed). */
export interface StreamOutcome {
  text: string;
  toolCalls: number;
  error: ProviderError | Error | null;
}

/**
 * The streaming contract, after the first chunk: relays the answer's chunks as SSE (usage only when
 * the client asked for it) and ends with `data: [DONE]`. A failure once bytes went out (a stall, a
 * cut, a provider error) ends the stream with an in-band error event in OpenAI's error shape and no
 * `[DONE]`, never a silent 200. A client that goes away stops the upstream call.
 */
export function relaySse(
  answer: Answer,
  opts: { requestId: string; includeUsage: boolean; onUsage: (usage: Usage) => void; onEnd: (outcome: StreamOutcome) => void },
): ReadableStream<Uint8Array> {
  let text = '';
  let toolCalls = 0;
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      let next = answer.first!;
      let error: StreamOutcome['error'] = null;
      try {
        while (!next.done) {
          const chunk = next.value;
          if (chunk.usage) opts.onUsage(chunk.usage);
          for (const ch of chunk.choices) {
            text += ch.delta.content ?? '';
            toolCalls += ch.delta.tool_calls?.length ?? 0;
          }
          if (chunk.choices.length || opts.includeUsage) {
            controller.enqueue(sseData(opts.includeUsage || !chunk.usage ? chunk : { ...chunk, usage: undefined }));
          }
          next = await answer.next!();
        }
        controller.enqueue(sseData('[DONE]'));
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
        const e = err instanceof ProviderError ? err : null;
        controller.enqueue(sseData({ error: { message: `The answer was interrupted: ${e?.message ?? 'the provider stream failed'}`, type: 'api_error', code: e?.category === 'stall' ? 'stream_stalled' : 'stream_interrupted', param: null } }));
        log('warn', 'stream.interrupted', { requestId: opts.requestId, provider: answer.target.provider, category: e?.category ?? 'stream' });
      } finally {
        opts.onEnd({ text, toolCalls, error });
        controller.close();
      }
    },
    cancel() {
      // The client went away: stop paying for tokens nobody reads.
      answer.abort();
    },
  });
}
