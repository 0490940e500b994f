// Types the OpenAI and Anthropic wrappers share (tollgate/openai, tollgate/anthropic).
import type { CostTags, Guard, GuardDecision, QuotaKey } from '../index'

/** Options of `guardOpenAI` and `guardAnthropic`. */
export interface GuardClientOptions<Ctx = any> {
  /**
   * The guard's context of a call made without `withContext(ctx)`, read when the call is made
   * (so an `AsyncLocalStorage` store works: `context: () => als.getStore()`). `body` is the
   * request. Default: `undefined`.
   */
  context?: (body: any) => Ctx
  /** The secret of a routed key (guard `routing`). Default: `key.apiKey`. */
  apiKey?: (key: QuotaKey) => string
  /** Tags the cost is recorded with (the guard's `tracker`). */
  tags?: (ctx: Ctx, body: any) => CostTags
  /**
   * Read the provider's rate-limit headers of every answer and 429, and refuse a call (limit
   * `'provider'`) on a key the provider said is exhausted, until its reset; a routed key is
   * paused in the guard's Quota (`quota.pause`), so no process sharing its store routes to it
   * before then. Default true.
   */
  feedback?: boolean
  /** Clock in ms (tests). Default `Date.now`. */
  now?: () => number
  /**
   * Up to this many ms, a call the guard refuses waits for capacity (`guard.acquire`'s
   * `wait`; the request's own `signal` stops it) instead of rejecting with
   * `ERR_TOLLGATE_LIMITED` at once. Default 0.
   */
  waitMs?: number
}

/** What a wrapper did (its own counters; the guard's are `guard.stats()`). */
export interface GuardedClientStats {
  /** Calls made through the wrapper. */
  calls: number
  /** Refused by the guard (nothing sent). */
  refused: number
  /** Answered from the guard's cache (nothing sent). */
  cached: number
  /** Settled with the provider's usage (or the estimate when it reported none). */
  settled: number
  /** Failed calls (the SDK threw): the decision was cancelled, nothing charged. */
  cancelled: number
  /** Streamed calls. */
  streams: number
  /** Streams that stopped before their end (the reader stopped, or the connection failed): settled with the usage seen so far. */
  aborted: number
  /** Answers and finished streams that carried no usage: the estimate stood. */
  noUsage: number
  /** Settlements that failed on a stream already failing (the stream's error was kept). */
  settleErrors: number
  /** Calls refused because the provider said their key is exhausted (nothing sent, nothing charged). */
  providerRefused: number
  /** Times the provider's headers marked a key exhausted. */
  providerExhausted: number
  /** Routed keys paused in the guard's Quota (`quota.pause`) after the provider said they are exhausted: no process sharing the store routes to them before their reset. */
  keysPaused: number
  /** Pauses the store could not record (the key still waits in this process). */
  pauseErrors: number
  /** Malformed rate-limit headers ignored. */
  headersIgnored: number
  /** Key id (`''`: the client's own key) → epoch ms until the provider said it is exhausted. */
  exhausted: Record<string, number>
}

/** `guarded.tollgate`. */
export interface GuardedClientInfo<C> {
  readonly guard: Guard<any>
  /** The client underneath (unguarded). */
  readonly client: C
  stats(): GuardedClientStats
  /**
   * `keys` without those the provider said are exhausted (until their reset). Pass the guard's
   * routing keys through it to route around them:
   * `routing: { quota, keys: () => ai.tollgate.available(keys) }`.
   */
  available<K extends QuotaKey>(keys: K[]): K[]
}

/**
 * The error a refused call rejects with (`ERR_TOLLGATE_LIMITED`), as `guard.run`'s: the guard's
 * decision, or — limit `'provider'` — the provider's own word that the key is exhausted.
 */
export interface GuardedCallRefused extends Error {
  code: 'ERR_TOLLGATE_LIMITED'
  limit: string
  retryAfterMs: number | null
  decision: GuardDecision | { ok: false; limit: 'provider'; retryAfterMs: number; remaining: {}; key: null; cached: null; providerKey: string }
}

/**
 * The client, guarded: the same methods and types (the guarded ones still return the SDK's
 * APIPromise shape: `withResponse()`, `asResponse()`), plus `withContext` and `tollgate`.
 */
export type Guarded<C, Ctx> = C & {
  /** A view of the guarded client whose calls are decided for `ctx`. */
  withContext(ctx: Ctx): Guarded<C, Ctx>
  readonly tollgate: GuardedClientInfo<C>
}
