// tollgate/ai-sdk: a Guard as a language model middleware of the AI SDK (`ai` ≥ 7).
import type { LanguageModelMiddleware, LanguageModelUsage } from 'ai'
import type { Guard, Usage } from '../index.js'

type CallOf<M> = M extends { transformParams?: (options: infer O) => unknown } ? O : never
/** The AI SDK's call options, as the middleware sees them (`prompt`, `maxOutputTokens`, `providerOptions`, …). */
export type AiSdkCallOptions = CallOf<LanguageModelMiddleware> extends { params: infer P } ? P : never
/** The wrapped model, as the middleware sees it (`provider`, `modelId`, …). */
export type AiSdkModel = CallOf<LanguageModelMiddleware> extends { model: infer M } ? M : never

/** Options of {@link guardMiddleware}. */
export interface GuardMiddlewareOptions<Ctx = any> {
  /**
   * The guard's ctx for one call. Default: `{ model, provider, ...providerOptions.tollgate }` —
   * pass `providerOptions: { tollgate: { user, org } }` to `generateText` / `streamText` (the
   * namespace is stripped before the provider is called). Return an `AsyncLocalStorage`'s store
   * here to carry a context that is not JSON.
   */
  context?: (call: { params: AiSdkCallOptions; model: AiSdkModel }) => Ctx
  /** The model id the guard estimates and prices (a `usd` limit needs a known one). Default: the wrapped model's `modelId`. */
  model?: string | ((model: AiSdkModel) => string)
  /**
   * Up to this many ms, a call the guard refuses waits for capacity (`guard.acquire`'s
   * `wait`; the call's `abortSignal` stops it) instead of throwing `ERR_TOLLGATE_LIMITED` at
   * once. Default 0.
   */
  waitMs?: number
}

/** What a middleware did (since it was made). */
export interface GuardMiddlewareStats {
  /** Calls that asked the guard (each AI SDK retry and each step is a call). */
  calls: number
  /** Calls refused (they rejected with `ERR_TOLLGATE_LIMITED`). */
  refused: number
  /** Calls answered from the guard's cache. */
  cached: number
  /** Calls settled with what they used. */
  settled: number
  /** Calls that failed before answering: everything given back. */
  cancelled: number
  /** Settled without usage from the provider: the input estimate and the output counted from the text received. */
  estimated: number
  /** Settles or cancels the store rejected (logged here, never thrown at the caller). */
  settleErrors: number
}

/** The middleware: pass it to `wrapLanguageModel({ model, middleware })`. */
export type GuardMiddleware = LanguageModelMiddleware & {
  readonly specificationVersion: 'v4'
  stats(): GuardMiddlewareStats
}

/**
 * A language model middleware that puts every call of the wrapped model through `guard`: one
 * `acquire` before (input tokens counted from the prompt and tools, output estimated as
 * `maxOutputTokens` or the guard's `defaultMaxTokens`), the provider called only when admitted,
 * one settle after with the AI SDK's usage — for a stream, when it finishes, fails or is
 * cancelled, with what it used. A refusal rejects with `ERR_TOLLGATE_LIMITED` (`err.decision`,
 * `err.limit`, `err.retryAfterMs`); with the guard's cache, a repeated call is answered from it
 * (as a generate result or a stream; `providerMetadata.tollgate.cached` is true).
 *
 * @example
 * const model = wrapLanguageModel({ model: openai('gpt-4o-mini'), middleware: guardMiddleware(guard) })
 * const { text } = await generateText({ model, prompt, providerOptions: { tollgate: { user: 'u1' } } })
 */
export declare function guardMiddleware<Ctx = any>(guard: Guard<Ctx>, options?: GuardMiddlewareOptions<Ctx>): GuardMiddleware

/**
 * tollgate's {@link Usage} from the AI SDK's usage — the model's (`inputTokens: { total, … }`)
 * or `generateText`'s (`inputTokens`, `inputTokenDetails`, …); null when a count is missing.
 */
export declare function usageFromAiSdk(usage: LanguageModelUsage | object | null | undefined): Usage | null
