import { ApiError } from '../../shared/errors';
import type { ChatCompletion, ChatRequest } from '../../shared/openai-types';
import { costUsd } from '../../shared/routing';
import type { UsageRecord } from './after';
import { dispatch, type DispatchContext, type DispatchPolicy } from './dispatch';
import type { Comparison } from './prepare';

type Choice = ChatCompletion['choices'][number];

/** Choice i of a comparison: model i's answer, and which model and provider gave it (or why none did). */
export interface ComparisonChoice extends Omit<Choice, 'finish_reason'> {
  finish_reason: Choice['finish_reason'] | 'error';
  /** The model as the caller named it in X-Inference-Edge-Compare. */
  requested: string;
  model: string;
  provider: string | null;
  error?: { message: string; type: string; code: string };
}

export interface ComparisonCompletion extends Omit<ChatCompletion, 'choices'> {
  choices: ComparisonChoice[];
}

/**
 * Multi-model comparison (seed 004 "enableMultiModelComparison", for split-screen UIs): the same
 * request goes to each model in parallel, each along its own route (retries, fallback, breakers),
 * and the answer is one chat.completion whose choice i is model i's. A model that fails gets an
 * error choice (`finish_reason: "error"`); when every model fails, the first failure is the answer.
 * Usage and cost are the sums, accounted into the call's usage record.
 */
export async function compareModels(req: ChatRequest, comparisons: Comparison[], policy: DispatchPolicy, ctx: DispatchContext, record: UsageRecord): Promise<ComparisonCompletion> {
  const results = await Promise.allSettled(comparisons.map((x) => dispatch(req, x.candidates, policy, ctx)));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length === results.length) throw failed[0]!.reason;

  const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  const choices = results.map((r, index): ComparisonChoice => {
    const requested = comparisons[index]!.model;
    if (r.status === 'rejected') {
      const e = r.reason instanceof ApiError ? r.reason : null;
      return {
        index, requested, model: requested, provider: null, finish_reason: 'error', logprobs: null,
        message: { role: 'assistant', content: null, refusal: null },
        error: { message: e?.message ?? 'The model failed.', type: e?.type ?? 'api_error', code: e?.code ?? 'internal' },
      };
    }
    const { answer, fallbacks, retries } = r.value;
    const completion = answer.completion!;
    const u = completion.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    usage.prompt_tokens += u.prompt_tokens;
    usage.completion_tokens += u.completion_tokens;
    record.costUsd += costUsd(answer.target, u.prompt_tokens, u.completion_tokens);
    record.fallbacks += fallbacks;
    record.retries += retries;
    return { ...completion.choices[0]!, index, requested, model: answer.target.model, provider: answer.target.provider };
  });
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  record.tokensIn = usage.prompt_tokens;
  record.tokensOut = usage.completion_tokens;
  record.model = choices.map((c) => c.model).join(',');
  record.provider = 'compare';
  record.errorCategory = failed.length ? 'partial_comparison' : null;
  record.empty = choices.every((c) => !c.message.tool_calls?.length && !(c.message.content ?? '').trim());
  return { id: `chatcmpl-${ctx.requestId}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: record.model, choices, usage };
}
