/**
 * tollgate keeps LLM applications inside their limits and budgets: response caching, sliding-
 * window rate limits, token budgets with reservations, and conversation sessions. Everything
 * runs in-process by default ({@link MemoryStore}) and is shared by every process through Redis
 * ({@link RedisStore}) when one process is not enough.
 *
 * Every class takes a store as its first argument — a {@link MemoryStore}, a
 * {@link RedisStore}, a Redis URL, an existing ioredis or node-redis client — or nothing (then
 * the process-wide default `MemoryStore`). Every method that reads or writes the store returns
 * a Promise (in-process calls finish synchronously and return an already-resolved one);
 * `stats()`, `keyFor()` and the getters answer synchronously, from this process.
 *
 * @example
 * import Redis from 'ioredis'
 * import { ResponseCache, RateLimiter, TokenBudget, SessionStore } from 'tollgate'
 * const redis = new Redis(process.env.REDIS_URL)
 * const limiter = new RateLimiter(redis, { maxRequests: 60, windowSeconds: 60 })
 * const { allowed } = await limiter.consume('openai')
 *
 * @packageDocumentation
 */

/** A clock in milliseconds since the Unix epoch. Inject one to test without sleeping. */
export type Clock = () => number

/** What every class accepts where a store goes. */
export type StoreLike = MemoryStore | RedisStore | string | RedisClientLike

/**
 * An existing client whose server, credentials, database and TLS setting tollgate reuses:
 * an ioredis `Redis` or `Cluster`, or a node-redis client or cluster (`createClient`,
 * `createCluster`). tollgate opens its own native connection with those settings; it never
 * sends commands through your client. Custom TLS certificates are not carried over.
 */
export interface RedisClientLike {
  options?: object
  sendCommand?: (...args: any[]) => unknown
  call?: (...args: any[]) => unknown
}

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** The clock expiries and windows are measured with. Default: the system clock. */
  now?: Clock
  /**
   * Most keys held (1 to 2^32 − 1). When a new key would exceed it, the least recently used
   * key is evicted — its limit, budget, entry or session is forgotten, so size it above your
   * live ids. Default: no bound (memory grows with live ids; see the README's per-id costs).
   */
  maxKeys?: number
}

/** What {@link MemoryStore.stats} reports. */
export interface MemoryStoreStats {
  /** Live keys. */
  keys: number
  /** The `maxKeys` bound, or `null`. */
  maxKeys: number | null
  /** Keys evicted so far to stay within `maxKeys` (least recently used first). */
  evictions: number
}

/**
 * State kept in this process. Nothing to install; every call is answered synchronously on the
 * calling thread. Expired keys are reclaimed as calls are made (no timer per key), so memory
 * stays bounded by live keys. The default store of every class.
 */
export declare class MemoryStore {
  constructor(options?: MemoryStoreOptions)
  /** Number of live keys (for a store used by one Quota: its scopes, as rate-budget counts). */
  size(): number
  /** The `maxKeys` bound, or `null`. */
  get maxKeys(): number | null
  /** Live keys, the bound, and evictions. */
  stats(): MemoryStoreStats
  /** Drops every key. */
  clear(): void
  /** True once `close()` was called. */
  get closed(): boolean
  /** Closes the store: every later call on it, by any class, rejects with `ERR_TOLLGATE_STORE_CLOSED` (`size()` and `clear()` throw it). */
  close(): Promise<void>
}

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions extends StoreFailureOptions {
  /** `redis://[user:password@]host:port/db` or `rediss://…` (TLS; append `#insecure` to skip verification). */
  url?: string
  /** Seed nodes of a Redis Cluster, as URLs. */
  cluster?: string[]
  /** Used when neither `url` nor `cluster` is given. Default `127.0.0.1`. */
  host?: string
  /** Default 6379. */
  port?: number
  username?: string
  password?: string
  /** Database index. Default 0. */
  db?: number
  /** Connect over TLS. An object with `rejectUnauthorized: false` skips certificate checks. */
  tls?: boolean | { rejectUnauthorized?: boolean }
  /** Longest wait for a connection, in ms. Default 500. */
  connectTimeoutMs?: number
  /** Longest wait for a reply, in ms (a reply waits behind the commands sent before it, so leave room for bursts). Default 1000. */
  commandTimeoutMs?: number
  /** Clock passed to the Lua scripts. Default: the Redis server's clock (one clock for all processes). */
  now?: Clock
  /**
   * What to do on a server whose `maxmemory-policy` can evict keys (`allkeys-*`, `volatile-*`:
   * every tollgate key has a TTL), which silently resets limits, budgets and quotas. The policy
   * is read (`CONFIG GET`, else `INFO memory`) on the first connection and after every outage.
   * - `'warn'` (default): one `process.emitWarning` per store, code `TOLLGATE_REDIS_EVICTION`;
   * - `'error'`: every call rejects with `ERR_TOLLGATE_STORE_EVICTION` (under every policy);
   * - `'ignore'`: the policy is not read.
   * On a Cluster, one master's setting is read.
   */
  evictionPolicy?: 'warn' | 'error' | 'ignore'
  /**
   * After a call timed out or found Redis unreachable, every class on this store skips Redis
   * and goes straight to its policy until a probe — one PING sent every `storeRetryMs` (every
   * 200 ms at most while connections are refused), never a user's call — gets an answer. So an
   * outage costs one timeout for the whole store, whatever the number of classes or calls.
   * Default: three times `commandTimeoutMs`, at least 1000 (3000 with the default timeouts).
   */
  storeRetryMs?: number
}

/** What {@link RedisStore.health} reports. */
export interface StoreHealthReport {
  /** `'down'` after a call timed out or found Redis unreachable, until a probe (one PING every `retryMs`) gets an answer. */
  status: 'up' | 'down'
  /** The error that marked the store down, and when (ms since the epoch). */
  outage: { code: string; message: string; since: number } | null
  /** Interval between probes while down; every class on the store skips Redis meanwhile. */
  retryMs: number
  /** Probes sent so far. */
  probes: number
  /** Counts queued for replay by every class on this store. */
  pending: number
  /** `maxmemory` in bytes (0: no limit), null until read (or with `evictionPolicy: 'ignore'`). */
  maxmemory: number | null
  /** `maxmemory-policy`, null until read. */
  maxmemoryPolicy: string | null
  /** The policy can evict tollgate's keys. */
  evicts: boolean
}

/**
 * State shared through Redis (or a Redis Cluster) by every process that uses the
 * same server. Each decision is one Lua script sent with EVALSHA — one round trip — touching
 * one key, so it is atomic and Cluster-safe (`invalidate` and `destroy` are a single `DEL`). Connecting and every call are bounded by short
 * timeouts: when Redis is down a call rejects with a {@link StoreError} within
 * `connectTimeoutMs + commandTimeoutMs`, and the connection comes back on its own.
 * A process that never calls `close()` still exits.
 */
export declare class RedisStore {
  /** @param url a `redis://` or `rediss://` URL */
  constructor(url: string, options?: Omit<RedisStoreOptions, 'url' | 'cluster'>)
  constructor(options?: RedisStoreOptions)
  /** A store on the same server, credentials, database and TLS setting as `client`. */
  static fromClient(
    client: RedisClientLike,
    options?: Pick<RedisStoreOptions, 'connectTimeoutMs' | 'commandTimeoutMs' | 'now' | 'onStoreError' | 'storeRetryMs' | 'evictionPolicy'>,
  ): RedisStore
  /** True once `close()` was called. */
  get closed(): boolean
  /**
   * Whether Redis answers, as every class on this store sees it (one health state per store),
   * and the server's memory settings. Sends no command.
   */
  health(): StoreHealthReport
  /**
   * Ends the connection; later calls reject with `ERR_TOLLGATE_STORE_CLOSED`. With
   * `{ flush: true }` it first pushes the counts every class on this store queued during an
   * outage, trying for up to `timeoutMs` (default twice `connectTimeoutMs + commandTimeoutMs`),
   * and resolves to how many were `left` (0: all reached Redis).
   *
   * @example
   * process.on('SIGTERM', async () => {
   *   const { left } = await store.close({ flush: true })
   *   if (left > 0) console.error(`${left} counts did not reach Redis`)
   *   process.exit(0)
   * })
   */
  close(options?: { flush?: boolean; timeoutMs?: number }): Promise<{ left: number }>
}

// ---- ResponseCache ---------------------------------------------------------------------------

/** Options of {@link ResponseCache}. */
export interface CacheOptions extends StoreFailureOptions {
  /** Seconds a response stays cached. Default 3600. */
  ttl?: number
  /** Key prefix. Default `'tollgate:cache:'`. */
  prefix?: string
  /**
   * Custom cache key (the prefix is still added, and the id encoded as every key part is).
   * Must be synchronous and return a non-empty string; receives the `params` given to
   * `get`/`set`/`invalidate` (or `undefined`). Default: SHA-256 of the canonical JSON of the
   * request body `{ model, messages, ...params }` ({@link requestKey}).
   */
  keyFn?: (model: string, messages: any[], params: RequestParams | undefined) => string
}

/**
 * The request's parameters that change its answer — `temperature`, `top_p`, `tools`,
 * `tool_choice`, `response_format`, `seed`, `max_tokens`, … — or the whole request body (its
 * `model` and `messages`, when present, must be the ones passed beside it). Every property is
 * part of the default cache key; a property whose value is `undefined` is left out, as JSON
 * leaves it out of the request sent.
 */
export type RequestParams = Record<string, unknown>

/**
 * Caches identical chat calls. The default key is SHA-256 of the canonical JSON (RFC 8785) of
 * the request body `{ model, messages, ...params }`: the same request with its properties in
 * another order is the same key, and a request with another temperature, tools or response
 * format is another key. A corrupt entry is evicted and reported as a miss.
 *
 * @example
 * const cache = new ResponseCache(redis, { ttl: 3600 })
 * const params = { temperature: 0, response_format: { type: 'json_object' } }
 * const cached = await cache.get('gpt-4o', messages, params)
 * if (cached) return cached
 * const result = await callModel({ model: 'gpt-4o', messages, ...params })
 * await cache.set('gpt-4o', messages, result, params)
 */
export declare class ResponseCache {
  constructor(store?: StoreLike, options?: CacheOptions)
  constructor(options: CacheOptions)
  get ttl(): number
  get prefix(): string
  /** The store key of a request: `prefix` + the encoded `keyFn(model, messages, params)`. */
  keyFor(model: string, messages: any[], params?: RequestParams): string
  /** The cached response, or `null` on a miss (a cached `null` also reads as a miss). */
  get<T = unknown>(model: string, messages: any[], params?: RequestParams): Promise<T | null>
  /** Caches `response` (anything JSON can hold) for `ttl` seconds, replacing what was there. */
  set(model: string, messages: any[], response: unknown, params?: RequestParams): Promise<void>
  /** Removes the cached response; resolves `true` when there was one. */
  invalidate(model: string, messages: any[], params?: RequestParams): Promise<boolean>
  /** This instance's counters, with cache lookups, hits, misses and hit rate. */
  stats(): ClassStats & { hits: number; misses: number; hitRate: number }
}

/**
 * SHA-256 (64 hex characters) of the canonical JSON of the request body
 * `{ model, messages, ...params }`: the default cache key, without prefix. Without params it is
 * the key of `{ model, messages }`. Values JSON would silently change — `NaN`, `±Infinity`,
 * `undefined` or a hole in an array, functions, symbols, `BigInt`, `Map`, `Set`, cycles — throw
 * `ERR_TOLLGATE_INVALID_ARG`; a lone surrogate is kept as its `\uXXXX` escape; any nesting depth.
 */
export declare function requestKey(model: string, messages: any[], params?: RequestParams): string

// ---- RateLimiter -----------------------------------------------------------------------------

/** Options of {@link RateLimiter}. */
export interface RateLimitOptions extends StoreFailureOptions {
  /** Requests allowed inside any window. Default 60; at most 10,000,000. */
  maxRequests?: number
  /** Window length in seconds. Default 60; at most 366 days. */
  windowSeconds?: number
  /** Key prefix. Default `'tollgate:ratelimit:'`. */
  prefix?: string
  /**
   * On Redis, an id refused until time T (the oldest request leaving the window) is refused
   * in-process until T, with no Redis command: nothing but time can free a slot, so the answer
   * is the same. `record` still goes to Redis. Default true.
   */
  blockedKeyCache?: boolean
  /**
   * Leased limits (Redis only; accepted and without effect on a MemoryStore): this process
   * takes a share of the limit for a short time in one round trip and answers decisions from
   * it in-process, giving back what it did not use. Still at most `maxRequests` in every
   * window across all processes; every process on a prefix must use the same mode. `true` for
   * the defaults, or {@link LeaseSettings}. See docs/leases.md. Default: no lease.
   *
   * @example
   * const limiter = new RateLimiter(redis, { maxRequests: 600, windowSeconds: 60, lease: true })
   */
  lease?: boolean | LeaseSettings
}

/** Settings of a lease (`lease: { … }`); out of range is a RangeError `ERR_TOLLGATE_OUT_OF_RANGE`. */
export interface LeaseSettings {
  /** Lease time in seconds, above 0 and at most the window (period). Default: a tenth of the window, at most 1 (RateLimiter); 1 (TokenBudget). */
  seconds?: number
  /** Most requests (tokens) one lease holds: an integer from 1 to the limit. Default: the limit. */
  share?: number
  /** A lease unused this long (seconds, above 0, at most `seconds`) is given back early. Default: `seconds / 4`. */
  idleSeconds?: number
}

/** The lease settings in force (`limiter.lease`). */
export interface LeaseInForce {
  seconds: number
  share: number
  idleSeconds: number
}

/** What a class holds under leases now (`stats().lease`, with `lease` on Redis). */
export interface LeaseStats {
  /** Ids (buckets) holding a live lease. */
  ids: number
  /** Units (requests, tokens) those leases hold. */
  units: number
  /** Units used under them so far. */
  used: number
  /** Ids whose rate this instance remembers (at most 10,000; the oldest idle ones go first). */
  known: number
}

/** A rate-limit decision. */
export interface RateLimitResult extends Answered {
  /**
   * `check`/`consume`: one more request fits (and `consume` counted it). `record`: the request
   * just recorded fitted inside the limit.
   */
  allowed: boolean
  /** Requests that still fit in the window now. */
  remaining: number
  /** Whole seconds until `remaining` next grows (the oldest counted request leaves the window); the window length when nothing is counted. */
  resetInSeconds: number
}

/**
 * A true sliding window per id (provider, model, API key): never more than `maxRequests`
 * admitted requests inside any span of `windowSeconds`. No burst at window boundaries.
 *
 * @example
 * const limiter = new RateLimiter(redis, { maxRequests: 60, windowSeconds: 60 })
 * const { allowed, resetInSeconds } = await limiter.consume('openai')
 * if (!allowed) throw new Error(`rate limited, retry in ${resetInSeconds}s`)
 */
export declare class RateLimiter {
  constructor(store?: StoreLike, options?: RateLimitOptions)
  constructor(options: RateLimitOptions)
  get maxRequests(): number
  get windowSeconds(): number
  get prefix(): string
  /** The lease settings in force, or null without `lease` (also on a MemoryStore: validated, unused). */
  get lease(): LeaseInForce | null
  /** Would one more request for `provider` fit? Counts nothing. */
  check(provider: string): Promise<RateLimitResult>
  /**
   * Counts one request for `provider` that was made, whether or not it fitted (tekimax's
   * `record`). Prefer {@link RateLimiter.consume} to admit requests: `check` then `record` is
   * two calls, and concurrent callers can all pass the `check`.
   */
  record(provider: string): Promise<RateLimitResult>
  /** Admits and counts one request if it fits, in one atomic step; counts nothing when refused. */
  consume(id: string): Promise<RateLimitResult>
  /** This instance's counters (`lease`: what it holds under leases, with `lease` on Redis). */
  stats(): ClassStats & { lease?: LeaseStats }
  /** Pushes counts made during a Redis outage to Redis now; resolves to true when none is left. */
  flush(): Promise<boolean>
  /**
   * Gives back what is leased (unused requests are free for other processes at once); a later
   * call takes a new lease. Call it before closing the store (leases are also given back on
   * 'beforeExit'; a lease never given back expires on its own). Resolves at once without `lease`.
   */
  close(): Promise<void>
}

// ---- TokenBudget -----------------------------------------------------------------------------

/** Options of {@link TokenBudget}. */
export interface TokenBudgetOptions extends StoreFailureOptions {
  /** Tokens allowed per period (required). */
  maxTokens: number
  /** Period length in seconds, starting at the bucket's first write. Default 86400 (a day). */
  periodSeconds?: number
  /** Seconds an unsettled reservation keeps counting before it expires. Default 600. */
  holdTtlSeconds?: number
  /** Key prefix. Default `'tollgate:budget:'`. */
  prefix?: string
  /**
   * Leased budget (Redis only; accepted and without effect on a MemoryStore): this process
   * takes a share of the period's tokens for a short time and reserves, records and settles
   * against it in-process. Reservations made under a lease (ids `lease:…`) are settled or
   * released in the process that made them. Plain and leased processes share a bucket. See
   * docs/leases.md. Default: no lease.
   */
  lease?: boolean | LeaseSettings
}

/** A reservation made by {@link TokenBudget.reserve}; pass it to `settle` or `release`. Plain data: it can cross processes. */
export interface BudgetHold {
  bucket: string
  id: string
  /** Tokens reserved. */
  tokens: number
  /** When the hold stops counting if never settled (ms since the epoch, on the store's clock). */
  expiresAt: number
}

/** A budget decision. */
export interface TokenBudgetResult extends Answered {
  /**
   * `check`/`release`: `used + reserved < maxTokens`. `record`/`settle`: the total (with
   * reservations) is still within `maxTokens`. `reserve`: the estimate was held.
   */
  allowed: boolean
  /** Tokens counted this period. */
  used: number
  /** `maxTokens − used − reserved`, never below 0. */
  remaining: number
  /** Whole seconds until the period ends; the period length when the bucket is empty. */
  resetInSeconds: number
  /** Tokens held by live reservations. */
  reserved: number
}

/** The result of {@link TokenBudget.reserve}. */
export interface TokenBudgetReservation extends TokenBudgetResult {
  /** The hold, or `null` when the estimate did not fit (nothing was held). */
  hold: BudgetHold | null
}

/**
 * Tokens per period per bucket (user, org, API key). Reserve an estimate before a call, then
 * settle the real count or release it: reservations count against `remaining` until then, so
 * concurrent callers cannot overspend. Reservations that are never settled expire.
 *
 * @example
 * const budget = new TokenBudget(redis, { maxTokens: 100_000, periodSeconds: 86_400 })
 * const { hold } = await budget.reserve(userId, 2_000)
 * if (!hold) throw new Error('Daily token budget exceeded')
 * try {
 *   const completion = await openai.chat.completions.create({ model: 'gpt-4o', messages })
 *   await budget.settle(hold, completion)   // or completion.usage.total_tokens
 * } catch (e) {
 *   await budget.release(hold)
 *   throw e
 * }
 */
export declare class TokenBudget {
  constructor(store: StoreLike | undefined, options: TokenBudgetOptions)
  constructor(options: TokenBudgetOptions)
  get maxTokens(): number
  get periodSeconds(): number
  get holdTtlSeconds(): number
  get prefix(): string
  /** The lease settings in force, or null without `lease`. */
  get lease(): LeaseInForce | null
  /** Is there budget left for `bucket`? Counts nothing. */
  check(bucket: string): Promise<TokenBudgetResult>
  /** Adds `tokensUsed` to `bucket` (an integer ≥ 0, or a usage: see {@link TokensUsed}); always counts. */
  record(bucket: string, tokensUsed: TokensUsed): Promise<TokenBudgetResult>
  /** Holds `estimate` tokens if they fit (`used + reserved + estimate ≤ maxTokens`). */
  reserve(bucket: string, estimate: number): Promise<TokenBudgetReservation>
  /**
   * Replaces a hold by the tokens the call really used: a number, tollgate's {@link Usage}, a
   * provider response or a {@link StreamUsage} (input tokens, cached included, plus output
   * tokens). A value without usage rejects (`ERR_TOLLGATE_NO_USAGE`, or
   * `ERR_TOLLGATE_INVALID_ARG` for `undefined`), never counts 0. Settle each hold once: the
   * tokens are always counted (so a hold that already expired loses nothing), and a second
   * settle of the same hold counts them again.
   *
   * @example
   * await budget.settle(hold, completion)                    // the OpenAI / Anthropic / Gemini response
   * await budget.settle(hold, completion.usage.total_tokens) // or the number
   */
  settle(hold: BudgetHold, actualTokens: TokensUsed): Promise<TokenBudgetResult>
  /** Drops a hold without counting anything. */
  release(hold: BudgetHold): Promise<TokenBudgetResult>
  /** This instance's counters (`lease`: what it holds under leases, with `lease` on Redis). */
  stats(): ClassStats & { lease?: LeaseStats }
  /** Pushes counts made during a Redis outage to Redis now; resolves to true when none is left. */
  flush(): Promise<boolean>
  /**
   * Gives back what is leased (unused tokens free at once; open reservations become holds in
   * Redis); a later call takes a new lease. Call it before closing the store. Resolves at once
   * without `lease`.
   */
  close(): Promise<void>
}

// ---- SessionStore ----------------------------------------------------------------------------

/** Options of {@link SessionStore}. */
export interface SessionOptions extends StoreFailureOptions {
  /** Seconds a session lives after its last save, append or touch. Default 1800. */
  ttl?: number
  /** Key prefix. Default `'tollgate:session:'`. */
  prefix?: string
  /**
   * Largest stored session in bytes: the UTF-8 JSON of the data without `messages` plus that of
   * the `messages` array (the assembled JSON is a few bytes longer). Larger saves and appends
   * reject with `ERR_TOLLGATE_TOO_LARGE` and leave the stored session as it was. Default: no cap.
   */
  maxBytes?: number
}

/**
 * Conversation state with a TTL. A session whose data is an object with a `messages` array
 * can grow with {@link SessionStore.append}, atomically, without a read-modify-write race.
 *
 * @example
 * const sessions = new SessionStore(redis, { ttl: 1800 })
 * const session = (await sessions.load('user-123')) ?? { messages: [] }
 * await sessions.append('user-123', { role: 'user', content: 'Hello' })
 */
export declare class SessionStore {
  constructor(store?: StoreLike, options?: SessionOptions)
  constructor(options: SessionOptions)
  get ttl(): number
  get prefix(): string
  get maxBytes(): number | null
  /** Replaces the session with `data` (anything JSON can hold) and restarts its TTL. */
  save(sessionId: string, data: unknown): Promise<void>
  /** The session's data, or `null`. Does not extend the TTL (see `touch`). A corrupt session is evicted and reads as `null`. */
  load<T = unknown>(sessionId: string): Promise<T | null>
  /**
   * Appends messages to the session's `messages` array in one atomic step, creating
   * `{ messages: [...] }` when there is no session, and restarts the TTL. Resolves to the
   * session's new size in bytes. Rejects with `ERR_TOLLGATE_NOT_A_MESSAGE_LIST` when the
   * stored data is not an object with a `messages` array.
   */
  append(sessionId: string, ...messages: unknown[]): Promise<number>
  /** Restarts the session's TTL without changing it; resolves `false` when there is none. */
  touch(sessionId: string): Promise<boolean>
  /** Deletes the session; resolves `true` when there was one. */
  destroy(sessionId: string): Promise<boolean>
  /** This instance's counters. */
  stats(): ClassStats
}

// ---- Errors ----------------------------------------------------------------------------------

/** Stable error codes (`err.code`). */
export declare const codes: {
  /** TypeError: an argument of the wrong type, an empty id, a value JSON cannot hold. */
  readonly INVALID_ARG: 'ERR_TOLLGATE_INVALID_ARG'
  /** RangeError: a number out of its range, an id that is too long. */
  readonly OUT_OF_RANGE: 'ERR_TOLLGATE_OUT_OF_RANGE'
  /** RangeError: a session over `maxBytes`. */
  readonly TOO_LARGE: 'ERR_TOLLGATE_TOO_LARGE'
  /** TypeError: `append` to a session that is not an object with a `messages` array. */
  readonly NOT_A_MESSAGE_LIST: 'ERR_TOLLGATE_NOT_A_MESSAGE_LIST'
  /**
   * RangeError: a model whose token encoding is not known (pass an encoding or a `fallback`),
   * or a model with no price (the error's `suggestions` names the closest known ids).
   */
  readonly UNKNOWN_MODEL: 'ERR_TOLLGATE_UNKNOWN_MODEL'
  /** TypeError: an option name that does not exist (`rpm`); `suggestion` is the closest known one. */
  readonly UNKNOWN_OPTION: 'ERR_TOLLGATE_UNKNOWN_OPTION'
  /** TypeError: a value that carries no token usage where one is needed (never read as 0). */
  readonly NO_USAGE: 'ERR_TOLLGATE_NO_USAGE'
  /** StoreError: Redis could not be reached or the connection broke. */
  readonly STORE_UNAVAILABLE: 'ERR_TOLLGATE_STORE_UNAVAILABLE'
  /** StoreError: Redis did not answer within the timeout. */
  readonly STORE_TIMEOUT: 'ERR_TOLLGATE_STORE_TIMEOUT'
  /** StoreError: the store was closed. */
  readonly STORE_CLOSED: 'ERR_TOLLGATE_STORE_CLOSED'
  /** StoreError: Redis answered with an error (for example a key of another type, or a script error). Never answered by `onStoreError`. */
  readonly STORE_ERROR: 'ERR_TOLLGATE_STORE_ERROR'
  /** StoreError: Redis refused the credentials (WRONGPASS, NOAUTH) or the user's ACL (NOPERM). Never answered by `onStoreError`. */
  readonly STORE_AUTH: 'ERR_TOLLGATE_STORE_AUTH'
  /** StoreError: Redis is at `maxmemory` under `noeviction` and refuses writes (OOM). Never answered by `onStoreError`: a limiter that cannot count does not admit silently. */
  readonly STORE_OOM: 'ERR_TOLLGATE_STORE_OOM'
  /** StoreError: the server's `maxmemory-policy` can evict keys and the store has `evictionPolicy: 'error'`. */
  readonly STORE_EVICTION: 'ERR_TOLLGATE_STORE_EVICTION'
  /** Error: a bug in tollgate (a native panic caught at the boundary). Please report it. */
  readonly INTERNAL: 'ERR_TOLLGATE_INTERNAL'
  /** Error: a user callback that gates a decision (SemanticCache `embed`) did not settle in time. */
  readonly CALLBACK_TIMEOUT: 'ERR_TOLLGATE_CALLBACK_TIMEOUT'
  /** Error: no model had room within the job's maxWaitMS (ProviderLimiter.run: within maxWaitMs). */
  readonly NO_CAPACITY: 'ERR_TOLLGATE_NO_CAPACITY'
  /** Error: the job called `reject(usage, {delegate: false})`. */
  readonly JOB_REJECTED: 'ERR_TOLLGATE_JOB_REJECTED'
  /** Error: the job delegated `maxAttempts` times without a result. */
  readonly JOB_ATTEMPTS: 'ERR_TOLLGATE_JOB_ATTEMPTS'
  /** Error: `stop()` was called while the job waited for capacity. */
  readonly LIMITER_STOPPED: 'ERR_TOLLGATE_LIMITER_STOPPED'
  /** Error: `guard.run` was refused by a limit; `err.decision`, `err.limit` and `err.retryAfterMs` say which and when. */
  readonly LIMITED: 'ERR_TOLLGATE_LIMITED'
  /** TypeError: a guard decision was settled or cancelled twice, or a refused one was ended. */
  readonly DECISION_ENDED: 'ERR_TOLLGATE_DECISION_ENDED'
}

export type ErrorCode = (typeof codes)[keyof typeof codes]

/** A store could not answer. `code` says why: unavailable, timeout, closed, or an error reply. */
export declare class StoreError extends Error {
  readonly name: 'StoreError'
  readonly code: 'ERR_TOLLGATE_STORE_UNAVAILABLE' | 'ERR_TOLLGATE_STORE_TIMEOUT' | 'ERR_TOLLGATE_STORE_CLOSED' | 'ERR_TOLLGATE_STORE_ERROR'
}

// ---- Quota (rate-budget) ---------------------------------------------------------------------

/** rate-budget's default token window: 60 s. */
export declare const WINDOW_MS: 60000
/** rate-budget's default safety buffer added to waits: 1 s. */
export declare const BUFFER_MS: 1000
/** rate-budget's default share of `rpd` that may be used: 100 %. */
export declare const THRESHOLD_PCT: 100

/** Spacing between two reservations on one key: `ceil(windowMs / rpm) + bufferMs` (rpm floored, at least 1). */
export declare function cooldownMs(rpm: number, bufferMs?: number | null, windowMs?: number): number
/** Requests per day a key may use: `ceil(rpd * (thresholdPct / 100))`, in floating point as rate-budget computes it (`dailyCap(100, 7)` is 8). */
export declare function dailyCap(rpd: number, thresholdPct?: number | null): number
/** Milliseconds until `tokens` more fit under `limit` in the sliding window (0 when they fit now), or `null` when they never can. */
export declare function tokenWaitMs(input: {
  used: number
  tokens: number
  limit: number
  hits?: Array<{ id?: string; at: number; tokens: number }>
  now: number
  windowMs?: number
  bufferMs?: number
}): number | null

/** An API key of a scope, with its limits. Extra fields are kept: results return this very object. */
export interface QuotaKey {
  /** Must be a string (a non-string id is never selected: `no_key`, as in rate-budget). */
  id: string
  /** Requests per minute, enforced as spacing between reservations. */
  rpm: number
  /** Tokens per `windowMs` sliding window. */
  tpm: number
  /** Requests per day (UTC day by default), times `thresholdPct`. */
  rpd: number
  /** Tokens per day (tollgate's addition; no limit when absent). */
  tpd?: number
  /** Higher is tried first. Default 0. */
  priority?: number
  /** Only `false` disables the key. */
  enabled?: boolean
  [extra: string]: unknown
}

/** The per-key metrics of a decision, before this request applies (rate-budget's `KeyCheck`). */
export interface QuotaKeyCheck {
  key: string
  ok: boolean
  /** Why the key is blocked; present with value `undefined` when `ok`. */
  reason: 'rpm' | 'tpm' | 'rpd' | 'tpd' | 'off' | 'paused' | undefined
  /** 0 when ok; the longest of the key's waits when blocked; `null` for `off` and for a request over `tpm`. */
  waitMs: number | null
  priority: number
  rpmMs: number
  tpmMs: number | null
  tokenUsed: number
  tokenPct: number
  dailyUsed: number
  dailyCap: number
  dailyLeft: number
  dailyPct: number
}

/** A reservation; pass it to `commit` or `rollback`. Plain data (a JSON copy works). */
export interface QuotaHold {
  id: string
  scope: string
  /** The chosen key's id. */
  key: string
  tokens: number
  at: number
  day: string
  prevAt: number | undefined
  prevId: string | undefined
  /**
   * Set on a hold granted by an `onStoreError` policy while Redis was away: it is forced onto
   * its key in Redis once Redis is back, and its commit or rollback follows it there.
   */
  local?: true
}

export interface QuotaOk<K extends QuotaKey = QuotaKey> extends Answered {
  ok: true
  /** The very key object passed in. */
  key: K
  tokens: number
  waitMs: 0
  checks: QuotaKeyCheck[]
}
export interface QuotaReserved<K extends QuotaKey = QuotaKey> extends QuotaOk<K> {
  hold: QuotaHold
}
export interface QuotaBlocked extends Answered {
  ok: false
  reason: 'rpm' | 'tpm' | 'rpd' | 'tpd' | 'off' | 'paused' | 'no_key'
  tokens: number
  /** The shortest wait among blocked keys; `null` when no key can ever take the request. */
  waitMs: number | null
  checks: QuotaKeyCheck[]
}

/** rate-budget's store contract: `fn` is synchronous and updates `state` in place; make it atomic per scope. */
export interface QuotaStore {
  mutate<T>(scope: string, fn: (state: { keys: Record<string, unknown> }) => T): T | Promise<T>
}

export interface QuotaOptions<Req = unknown> extends StoreFailureOptions {
  /**
   * A MemoryStore (default: a new one per Quota), a RedisStore (or a Redis URL, or an ioredis /
   * node-redis client: one EVALSHA per call, atomic per scope), or your own `{ mutate(scope, fn) }` store.
   */
  store?: StoreLike | QuotaStore
  /** Tokens a request will use. Default: a number request, else `req.tokens` if a number, else 1. Floored, at least 0. */
  estimate?: (req: Req) => number | Promise<number>
  /** Clock in ms. Default `Date.now`. Used as is (fractions kept), like rate-budget. */
  now?: () => number
  /** Hold id generator (called once per `reserve`). */
  id?: () => string
  /** Token window and RPM spacing base, ms. Default 60000 (floored, at least 1). */
  windowMs?: number | null
  /** Added to every wait, ms. Default 1000 (floored, at least 0). */
  bufferMs?: number | null
  /** Share of `rpd` that may be used, in %. Default 100 (clamped to 0–100). */
  thresholdPct?: number | null
  /** Daily bucket of `now`. Default: the UTC date `YYYY-MM-DD`. */
  dayKey?: (now: number) => string
  /** When the daily bucket resets. Default: the next UTC midnight. */
  resetAt?: (now: number) => number
  /** Uncommitted holds roll back by themselves after this many ms. Default 600000 (10 min); `null` keeps them forever (rate-budget). */
  holdTtlMs?: number | null
  /** Never admit a request over TPM, also with `bufferMs: 0`. Default true; `false` is rate-budget's behaviour. */
  strictTpm?: boolean
  /**
   * Time never goes backwards within a scope: a request whose clock reads earlier than the
   * scope's latest reservation counts as made at that reservation. Default true. `false` is
   * rate-budget's behaviour, which drops reservations "from the future" — with several
   * processes (each reading its clock before its round trip) that forgets reservations and
   * over-admits.
   */
  monotonic?: boolean
  /**
   * RPM as a sliding window, the way providers enforce it: at most `rpm` reservations on a key
   * in any `windowMs` (a rollback gives its request back). Default false: rate-budget's spacing,
   * one reservation every `windowMs / rpm + bufferMs` — with the default 1 s buffer a key of
   * `rpm: 500` gets ~54 a minute, and never two at once.
   */
  rpmWindow?: boolean
  /** Key prefix of scopes in the store. Default `'tollgate:quota:'`. */
  prefix?: string
}

/**
 * rate-budget's multi-key quota engine: picks the key of a scope with RPM, TPM and RPD headroom
 * (priority first, then the least used), reserves on it, then commits the real tokens or rolls
 * back. Numbers, tie-breaks and result shapes match rate-budget, including how bad numbers are
 * sanitised. Runs on a MemoryStore, on Redis, or on your own `{ mutate }` store.
 *
 * @example
 * const quota = new Quota()
 * const keys = [{ id: 'key-a', rpm: 15, tpm: 250_000, rpd: 500, priority: 10 }, { id: 'key-b', rpm: 15, tpm: 250_000, rpd: 500 }]
 * const r = await quota.reserve('tenant:acme', keys, { tokens: 2_400 })
 * if (!r.ok) throw new Error(`No quota key available: ${r.reason}`)
 * try {
 *   const response = await callProvider(r.key)
 *   await quota.commit(r.hold, { tokens: response.usage.totalTokens })
 * } catch (e) {
 *   await quota.rollback(r.hold)
 *   throw e
 * }
 */
export declare class Quota<K extends QuotaKey = QuotaKey, Req = unknown> {
  constructor(options?: QuotaOptions<Req>)
  /** The store first, as every other class takes it (`new Quota(redis, { rpmWindow: true })`). */
  constructor(store: StoreLike | QuotaStore, options?: Omit<QuotaOptions<Req>, 'store'>)
  /** Picks a key without reserving (it still tidies the scope's state, as rate-budget does). */
  check(scope: string, keyOrKeys: K | K[], req?: Req): Promise<QuotaOk<K> | QuotaBlocked>
  /** Picks a key and reserves one request and the estimated tokens on it. */
  reserve(scope: string, keyOrKeys: K | K[], req?: Req): Promise<QuotaReserved<K> | QuotaBlocked>
  /**
   * Sets the hold's tokens to the real count and releases it; false when there is no such hold.
   * `usage`: rate-budget's `{ tokens }` (undefined `tokens`, or no `usage`, keeps the estimate),
   * or what the call returned — a provider response (`quota.commit(r.hold, completion)`), a
   * `Usage`, a finished `streamUsage()`, or a number — read as input + output tokens.
   */
  commit(hold: Pick<QuotaHold, 'id' | 'scope' | 'key'> & Partial<QuotaHold>, usage?: { tokens?: number } | TokensUsed): Promise<boolean>
  /** Gives back the hold's tokens, request of the day and RPM spacing; false when there is no such hold. */
  rollback(hold: Pick<QuotaHold, 'id' | 'scope' | 'key'> & Partial<QuotaHold>): Promise<boolean>
  /**
   * Marks `key` of `scope` exhausted until `untilMs` (epoch ms on the quota's clock), as the
   * provider said (a 429, or a remaining of 0 with its reset): every `check` / `reserve` on
   * the store, in any process sharing it, refuses the key with reason `'paused'` (and the wait
   * until then) and routes to the scope's other keys. A later pause never shortens an earlier
   * one. One write into the scope's state (on Redis, under the scope's hash tag). The SDK
   * wrappers call it for a routed key the provider reported exhausted.
   * @example
   * await quota.pause('org-1', 'key-a', Date.now() + 30_000)
   */
  pause(scope: string, key: string | { id: string }, untilMs: number): Promise<boolean>
  /** This instance's counters (refusals by reason: rpm, tpm, rpd, tpd, off, no_key). */
  stats(): ClassStats
  /** Pushes reservations, commits and rollbacks made during a Redis outage to Redis now. */
  flush(): Promise<boolean>
}
/** rate-budget's other name for {@link Quota}: the same class. */
export declare const QuotaManager: typeof Quota

// rate-budget's MemoryStore methods, on tollgate's MemoryStore (scopes of Quotas with the default prefix).
export declare interface MemoryStore {
  /** A copy of a Quota scope's state in rate-budget's shape (`keys.<id>.used`, `hits`, `holds`, `lastAt`), or undefined. */
  get(scope: string): { keys: Record<string, any> } | undefined
  /** Replaces a Quota scope's state. */
  set(scope: string, state: { keys: Record<string, any> }): void
  /** Deletes one Quota scope, or every one when `scope` is empty or missing. */
  reset(scope?: string): void
}

// ---- Token counting --------------------------------------------------------------------------

/** OpenAI's encodings tollgate counts exactly. */
export type Encoding = 'o200k_base' | 'cl100k_base'

export interface CountOptions {
  /** The encoding for a model tollgate does not know. Without it, an unknown model is a RangeError (`ERR_TOLLGATE_UNKNOWN_MODEL`). */
  fallback?: Encoding
}

/**
 * Tokens in `text`, exactly as OpenAI's tokenizer counts them, for a model (`'gpt-4o'` →
 * `o200k_base`, `'gpt-4'` → `cl100k_base`) or an encoding name. Default `o200k_base`.
 * Synchronous, linear in the worst case; the encoding loads once per process on first use.
 *
 * @example
 * countTokens('Hello, world!', 'gpt-4o') // 4
 */
export declare function countTokens(text: string, modelOrEncoding?: string, options?: CountOptions): number
/** Tokens in each of `texts`, in one call. */
export declare function countTokensBatch(texts: string[], modelOrEncoding?: string, options?: CountOptions): number[]
/**
 * Tokens a chat prompt costs, with OpenAI's formatting overhead (3 a message, 1 a name, 3 to
 * prime the reply). `content` may be a string or an array of parts; text parts are counted,
 * images and other parts are not.
 */
export declare function countMessageTokens(
  messages: Array<{ role: string; content?: string | null | Array<{ type?: string; text?: string }>; name?: string }>,
  model?: string,
  options?: CountOptions,
): number
/** The encoding of an OpenAI model name, or null when unknown. */
export declare function encodingForModel(model: string): Encoding | null

// ---- Retry -----------------------------------------------------------------------------------

export interface RetryOptions {
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number
  /** Base of the exponential backoff, ms. Default 1000. */
  baseDelayMs?: number
  /** The cost patterns article's name for `baseDelayMs`. */
  baseDelay?: number
  /** Cap of one backoff, ms. Default 30000. */
  maxDelayMs?: number
  /** A 429 asking to wait longer than this (ms) is thrown instead of waited for. Default 60000. */
  maxRetryAfterMs?: number
  /** Stops waiting (and retrying) at once; the call rejects with the signal's reason. */
  signal?: AbortSignal
  /** Called before each wait. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: 'retry-after' | 'rate-limited' | 'server-error' | 'network'; error: unknown }) => void
  /** For tests: how to wait (default: a timer that the signal cancels). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  /** For tests: the jitter source, in [0, 1). Default `Math.random`. */
  random?: () => number
  /** For tests: the clock an HTTP-date `retry-after` is measured against. Default `Date.now`. */
  now?: () => number
}

/**
 * Calls `fn` until it succeeds, retrying what the provider asks to retry: a 429 waits what
 * `retry-after-ms` or `retry-after` (seconds or an HTTP date) says, else backs off; 5xx and
 * network errors back off exponentially with full jitter (a random delay up to
 * `min(maxDelayMs, baseDelayMs * 2^attempt)`); other 4xx are thrown at once. Reads the errors
 * the OpenAI and Anthropic SDKs throw (`status`, `headers`), axios-style `response`, and Node /
 * fetch network errors. The last error is thrown when the retries run out.
 *
 *
 * `fn` receives `requestOptions` (`{ maxRetries: 0, signal }`): pass it as the SDK call's
 * options, or the SDK's own retries (2 by default in both SDKs) multiply with these — 12
 * requests instead of 4 for `maxRetries: 3`. Or create the client with `maxRetries: 0`.
 *
 * @example
 * const result = await withRetry((_, req) => openai.chat.completions.create({ model: 'gpt-4o-mini', messages }, req), { maxRetries: 3 })
 */
export declare function withRetry<T>(fn: (attempt: number, requestOptions: RetryRequestOptions) => Promise<T> | T, options?: RetryOptions): Promise<T>

/** One of a provider's rate limits, as its headers state it (each field only when its header was valid). */
export interface ProviderRateLimit {
  /** The limit (requests or tokens per the provider's window). */
  limit?: number
  /** What is left of it. */
  remaining?: number
  /** Milliseconds from the headers' time until the limit is whole again. */
  resetMs?: number
  /** The same as an epoch time (ms). */
  resetAt?: number
}

/** What {@link rateLimitsFrom} read. */
export interface ProviderRateLimits {
  /** `x-ratelimit-*-requests` (OpenAI) or `anthropic-ratelimit-requests-*`. */
  requests?: ProviderRateLimit
  /** `x-ratelimit-*-tokens` (OpenAI) or `anthropic-ratelimit-tokens-*`. */
  tokens?: ProviderRateLimit
  /** `anthropic-ratelimit-input-tokens-*`. */
  inputTokens?: ProviderRateLimit
  /** `anthropic-ratelimit-output-tokens-*`. */
  outputTokens?: ProviderRateLimit
  /** `retry-after-ms`, else `retry-after` (seconds or an HTTP date), in ms. */
  retryAfterMs?: number
  /** The names of the malformed headers, which were ignored. */
  ignored: string[]
}

/**
 * A provider's rate limits from its response headers (of an answer or a 429): OpenAI's
 * `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (resets as durations: `6m0s`, `20ms`,
 * `1.5s`), Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*`
 * (resets as RFC 3339 times), `retry-after` and `retry-after-ms`. Absent headers are left out;
 * malformed ones are left out and named in `ignored`; it never throws on what a server sent.
 * `headers`: a `Headers` (an SDK's `response.headers`, `APIError.headers`), a Map, or a record
 * (any case, arrays read by their first value). `options.now`: when they were received (ms,
 * default `Date.now()`).
 *
 * @example
 * const { data, response } = await openai.chat.completions.create({ model, messages }).withResponse()
 * const { requests, tokens } = rateLimitsFrom(response.headers)
 * if (tokens?.remaining === 0) console.log(`out of tokens until ${new Date(tokens.resetAt!)}`)
 */
export declare function rateLimitsFrom(headers: Headers | Map<string, string> | Record<string, string | string[] | number | undefined> | null | undefined, options?: { now?: number }): ProviderRateLimits

/** The per-request options of the OpenAI and Anthropic SDKs that stop them retrying on their own. */
export interface RetryRequestOptions {
  maxRetries: 0
  signal?: AbortSignal
}

// ---- Prices and costs ------------------------------------------------------------------------
//
// Money is integer nano-dollars (1e-9 USD) inside: a price is kept as nano-dollars per 1M
// tokens, a cost is the exact sum rounded once to the nano-dollar (halves up). Amounts come out
// as USD numbers equal to that decimal (`0.0000033`, never `0.0000032999999999999997`).

/** USD per 1M tokens (kept to the nano-dollar). */
export interface ModelPrice {
  input: number
  /** Cached input (a cache read). */
  cachedInput: number
  /** Writing input to the cache (Anthropic bills it at 1.25× input). */
  cacheWrite: number
  output: number
  /** Share of the price paid through the provider's batch API (0.5 = half). */
  batchDiscount: number
}

/**
 * One usage shape for every provider. `inputTokens` counts every input token (cached and
 * cache-write ones included); `outputTokens` every output token (reasoning included).
 */
export interface Usage {
  inputTokens: number
  cachedInputTokens: number
  cacheWriteTokens: number
  outputTokens: number
  reasoningTokens: number
}

/**
 * The defined or built-in price of a model, by its exact id or a provider's dated or versioned
 * id of it (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`, `…@20241022`, `…-v1:0`,
 * `gemini-1.5-pro-002`, `…-latest`), never by a prefix that names another model
 * (`gpt-4o-mni` is not `gpt-4o`). Null when unknown.
 */
export declare function priceOf(model: string): ModelPrice | null
/** The ids of the built-in catalog (chat and embedding models of OpenAI, Anthropic and Google). */
export declare function catalogModels(): string[]
/** Adds or replaces a model's price, process-wide, ahead of the built-in catalog. `cachedInput`/`cacheWrite` default to `input`, `batchDiscount` to 0.5. */
export declare function definePrice(model: string, price: Pick<ModelPrice, 'input' | 'output'> & Partial<ModelPrice>): void
/**
 * USD a call cost, rounded to the nano-dollar. `usage` is tollgate's {@link Usage} or anything
 * {@link usageFrom} reads (a response). Cached input is billed at the cached rate and cache
 * writes at the write rate, never also as plain input. Throws `ERR_TOLLGATE_UNKNOWN_MODEL` for
 * a model without a price (its `suggestions` name the closest known ids).
 *
 * @example
 * costOf(completion, 'gpt-4o')   // or costOf(usageFrom(completion), 'gpt-4o')
 */
export declare function costOf(
  usage: Partial<Pick<Usage, 'inputTokens' | 'cachedInputTokens' | 'cacheWriteTokens' | 'outputTokens'>> | object,
  model: string,
  options?: { batch?: boolean },
): number
/** The cost patterns article's estimate before a call: `input` as text (counted) or a token count. */
export declare function estimateCost(
  input: string | number,
  estimatedOutputTokens: number,
  model: string,
): { inputTokens: number; estimatedOutputTokens: number; estimatedCost: number; model: string }
/**
 * One {@link Usage} from any provider's response, stream event or usage object; null when it
 * carries none. Per kind:
 * - OpenAI chat completion; its stream chunks: null, except the last one when the request set
 *   `stream_options: { include_usage: true }`;
 * - OpenAI Responses API response; its stream events: null, except `response.completed`
 *   (`response.incomplete`, `response.failed`);
 * - Anthropic message; `message_start`: the input (cache reads and writes added) and output
 *   so far (1); `message_delta`: running totals as of that delta — never add the two (use
 *   {@link streamUsage}); other events: null;
 * - Gemini response or stream chunk (`usageMetadata`, running totals);
 * - the bare `usage` object of any of them, tekimax's ChatResult, tollgate's Usage, a complete
 *   {@link StreamUsage}.
 * A token field that is not an integer ≥ 0 throws (a coded TypeError / RangeError).
 */
export declare function usageFrom(response: unknown): Usage | null

/**
 * Tokens a call used, wherever a class settles tokens: an integer ≥ 0, tollgate's
 * {@link Usage}, a provider response ({@link usageFrom}: `inputTokens + outputTokens`, cached
 * input included) or a complete {@link StreamUsage}.
 */
export type TokensUsed = number | Partial<Usage> | StreamUsage | object

/**
 * Collects the usage of one streamed call from its events — OpenAI chat chunks, Responses API
 * events, Anthropic events, Gemini chunks — whatever their order and however often one repeats:
 * stream counts are running totals, so each field keeps the largest value seen (an Anthropic
 * `message_start` and `message_delta` are never added up). Settle methods accept it directly.
 *
 * @example
 * const acc = streamUsage()
 * const stream = await openai.chat.completions.create({ model, messages, stream: true, stream_options: { include_usage: true } })
 * for await (const chunk of acc.track(stream)) process.stdout.write(chunk.choices[0]?.delta?.content ?? '')
 * await budget.settle(hold, acc)   // or acc.final()
 */
export declare class StreamUsage {
  /** Reads one event (those without usage are fine); a non-event or another provider's event throws `ERR_TOLLGATE_INVALID_ARG`. */
  add(event: object): this
  /** Passes `stream`'s events through, reading each. */
  track<E extends object>(stream: AsyncIterable<E>): AsyncGenerator<E, void, undefined>
  /** The usage seen so far (a copy), or null. */
  get usage(): Usage | null
  /** True once the event carrying the final usage was seen. */
  get complete(): boolean
  /** The final usage; throws `ERR_TOLLGATE_NO_USAGE` until it was seen (e.g. an OpenAI stream without `include_usage`). */
  final(): Usage
}
/** A new {@link StreamUsage} for one streamed call. */
export declare function streamUsage(): StreamUsage

// ---- Store failures and observability -------------------------------------------------------

/**
 * What a Redis-backed class does when Redis is away (a timeout, a connection refused or reset,
 * `LOADING`, a failover, `CLUSTERDOWN`/`TRYAGAIN`). Other errors — credentials, ACLs, a full
 * server (OOM), a key of another type, a script error — reject under every policy.
 * - `'fail-closed'` (default): the call rejects with a {@link StoreError} — nothing is decided
 *   without the store, and `err.code` says why;
 * - `'fail-open'`: the call answers as if there were no limit (admitted, a cache miss, an empty
 *   session), marked `fallback: 'fail-open'`;
 * - `'local'`: an in-process twin with the same limits answers (per process), marked
 *   `fallback: 'local'`; a RateLimiter's, TokenBudget's, ProviderLimiter's and CostTracker's
 *   twin starts, per id, from what Redis last told this process (requests, tokens, points or
 *   dollars left).
 * Under `'fail-open'` and `'local'` what was counted meanwhile (requests admitted, tokens or
 * dollars recorded, holds settled or released) is replayed to Redis, at its original time, once
 * Redis answers again — at least once: a call that timed out may also have been applied.
 * Every class on one {@link RedisStore} shares its health state: the first call that meets an
 * outage marks the store down for all of them until a probe finds Redis back.
 */
export type StoreErrorPolicy = 'fail-closed' | 'fail-open' | 'local'

/** Every policy name. */
export declare const POLICIES: readonly StoreErrorPolicy[]

/** Failure options of every Redis-backed class (a RedisStore's are the defaults of its classes). */
export interface StoreFailureOptions {
  /** Default `'fail-closed'`. Ignored on a MemoryStore (it cannot fail). */
  onStoreError?: StoreErrorPolicy
  /**
   * @deprecated The interval belongs to the {@link RedisStore} (`RedisStoreOptions.storeRetryMs`):
   * one health state per store, shared by its classes. A class's value is validated and
   * otherwise ignored.
   */
  storeRetryMs?: number
}

/** Set on results answered by a policy instead of the store. */
export interface Answered {
  /** Which policy answered; absent when the store did. */
  fallback?: 'fail-open' | 'local'
  /** The store error the policy answered. */
  error?: StoreError
}

/** Counters of one class instance (`stats()`); `metrics()` has them for every instance. */
export interface ClassStats {
  /** Calls answered (by the store or a policy). */
  decisions: number
  /** Script calls sent to Redis: round trips (one can carry many limiter decisions). */
  redisCalls: number
  /** Refusals by reason (`limit`, `budget`). */
  refused: Record<string, number>
  /** Store failures by error code. */
  errors: Partial<Record<ErrorCode, number>>
  /** Calls answered by each policy. */
  fallbacks: { 'fail-open': number; local: number }
  /** Counts made during an outage and replayed to Redis since. */
  replayed: number
  /** Counts dropped because more than 100,000 waited for replay. */
  dropped: number
  /** Refusals answered by the blocked-key cache without a Redis command (RateLimiter). */
  blockedLocally: number
  /** The failure policy; null on a MemoryStore. */
  policy: StoreErrorPolicy | null
  /** Counts waiting for replay. */
  pending: number
  /** `flush()` attempts that left counts queued (each attempt's error is in `errors`). */
  flushFailures: number
  /** The store's `maxmemory-policy` as last read; null on a MemoryStore or until read. */
  maxmemoryPolicy: string | null
  /** The store's health as every class on it sees it; null on a MemoryStore. */
  storeStatus: 'up' | 'down' | null
}

/**
 * Every class's counters in the Prometheus text exposition format, labelled by class and
 * prefix: `tollgate_decisions_total`, `tollgate_redis_calls_total`, `tollgate_refusals_total{reason}`,
 * `tollgate_store_errors_total{code}`, `tollgate_fallbacks_total{policy}`,
 * `tollgate_replayed_total`, `tollgate_replay_dropped_total`, `tollgate_flush_failures_total`.
 *
 * @example
 * http.createServer((req, res) => res.end(metrics())).listen(9464)
 */
export declare function metrics(): string

// ---- Guard -----------------------------------------------------------------------------------

/** A sliding window (`'1s'`, `'1m'`, `'1h'`, `'1d'`, `'10m'`, … or milliseconds) or a calendar period (UTC unless `timeZone`). */
export type GuardPer = '1s' | '1m' | '1h' | '1d' | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}` | number | 'day' | 'month'

/** What a limit counts: exactly one of these per limit. */
export type GuardMeasure =
  /** Calls. */
  | { requests: number }
  /** Input + output tokens (cached input included). */
  | { tokens: number }
  | { inputTokens: number }
  | { outputTokens: number }
  /** Dollars, priced with the built-in catalog or `definePrice` (integer nano-dollars inside). */
  | { usd: number }
  /** Calls in flight (no `per`). */
  | { concurrent: number }

/** One limit of a {@link Guard}'s policy. */
export type GuardLimit<Ctx = any> = {
  /** Names the limit in decisions, stats and keys: 1–64 letters, digits, `_ . : -`. */
  id: string
  /**
   * The scope the limit applies to for this call — a user, org, feature, provider, model or API
   * key (any string; limits with the same id and scope share one counter) — or `null` to skip
   * the limit for this call. A fixed string applies one counter to every call.
   */
  scope: ((ctx: Ctx) => string | null | undefined) | string
  /** The window or period; required except for `concurrent`. */
  per?: GuardPer
  /** IANA time zone of a `'day'` or `'month'` period (default UTC). */
  timeZone?: string
  /**
   * Leased mode on Redis, for a sliding-window limit (docs/leases.md): this process takes a
   * share of the limit per scope for a short time in one round trip and answers this limit
   * in-process; the limit stays exact across processes. `true` for the defaults (lease time
   * `min(1 s, per / 10)`, share the whole limit), or {@link LeaseSettings} (`share` at most
   * the limit). Overrides the guard's `lease`; `false` opts out. Not allowed on a calendar
   * period or `concurrent` (`ERR_TOLLGATE_INVALID_ARG`); ignored on a MemoryStore.
   *
   * @example
   * { id: 'user-tpm', scope: (ctx) => ctx.user, tokens: 100_000, per: '1m', lease: { seconds: 2 } }
   */
  lease?: boolean | LeaseSettings
} & GuardMeasure

/** Options of {@link Guard}. */
export interface GuardOptions<Ctx = any> extends StoreFailureOptions {
  /** Default: the process's shared MemoryStore. */
  store?: StoreLike
  limits: GuardLimit<Ctx>[]
  /** Route each admitted call to an API key with {@link Quota} (its RPM/TPM/RPD/TPD). */
  routing?: {
    quota: Quota<any, any>
    /** The keys, or the keys for this call. */
    keys: QuotaKey[] | ((ctx: Ctx) => QuotaKey[])
    /** Quota scope. Default `'default'`. */
    scope?: string | ((ctx: Ctx) => string)
    /** The `limit` a refusal by the key pool reports. Default `'keys'`. */
    id?: string
  }
  /** Answer repeated requests (those with `messages`) from this cache; `settle(response)` fills it. */
  cache?: ResponseCache | SemanticCache
  /** Record each settled call's cost (with `request.tags`). */
  tracker?: CostTracker
  /** An admitted decision never settled gives its capacity back after this long. Default 600000 (10 min). */
  holdTtlMs?: number
  /** Output tokens estimated when a request has no `maxTokens`. Default 1024. */
  defaultMaxTokens?: number
  /** Key prefix. Default `'tollgate:guard:'`. */
  prefix?: string
  /**
   * Leased mode on Redis for every sliding-window limit of `requests`, `tokens`, `inputTokens`
   * or `outputTokens` (a limit's own `lease` overrides it): see {@link GuardLimit.lease}. With
   * leases, a decision takes from its leased limits in-process and sends the rest (unleased
   * limits, routing) in one round trip, all or nothing; a call whose limits are all leased
   * costs no round trip while the leases have room. Every process sharing a limit must lease
   * it alike (a leased limit lives on keys of its own).
   */
  lease?: boolean | LeaseSettings
  /**
   * OpenTelemetry metrics (GenAI conventions + tollgate's, see docs/telemetry.md), recorded when
   * `@opentelemetry/api` is installed — on by default through its global MeterProvider. `false`
   * turns them off; `meterProvider` picks another; `provider(model)` names a model's provider
   * (`gen_ai.provider.name`; default: from the model id's well-known prefixes).
   */
  telemetry?: boolean | { meterProvider?: { getMeter(name: string, version?: string): unknown }; provider?: (model: string) => string }
  /**
   * `'fail-closed'` (default), `'fail-open'` (admitted without asking) or `'local'` (a twin guard
   * in this process decides); under both, what admitted calls used reaches Redis once it answers.
   */
  onStoreError?: StoreErrorPolicy
}

/** The call a guard decides on. */
export interface GuardRequest {
  model: string
  /** Counted with the model's encoding (o200k_base when unknown) unless `tokens` is given. */
  messages?: Array<{ role?: string; content?: unknown; name?: string }>
  /** Input tokens, when known (skips counting `messages`). */
  tokens?: number
  /** Output tokens the call may produce; the estimate. Default `defaultMaxTokens`. */
  maxTokens?: number
  /** Request parameters that are part of the cache key (temperature, tools, …). */
  params?: RequestParams
  /** Tags the cost is recorded with (`tracker`). */
  tags?: CostTags
}

/** One guard's decision on one call. */
export interface GuardDecision extends Answered {
  /** Admitted on every limit (and routed, when routing is on), or answered from the cache. */
  readonly ok: boolean
  /** The first limit (in policy order) that refused; null when admitted. */
  readonly limit: string | null
  /** When refused: ms until every refusing limit may have room (null: the call can never fit). */
  readonly retryAfterMs: number | null
  /** Every applicable limit's id → what is left (dollars for `usd`, calls for `concurrent`). */
  readonly remaining: Record<string, number>
  /** The routed API key (routing on), else null. */
  readonly key: QuotaKey | null
  /** The cached response when the cache answered (nothing was charged), else null. */
  readonly cached: unknown | null
  /**
   * Replaces every estimate by the real usage — a provider response (OpenAI chat or Responses,
   * Anthropic, Gemini), a stream's final chunk, a finished `streamUsage()` or a {@link Usage}:
   * tokens and dollars charged or refunded, the concurrency slot freed, the quota key
   * committed, the cost recorded and the response cached. Once per decision
   * (`ERR_TOLLGATE_DECISION_ENDED` after). After `holdTtlMs` the decision has expired: nothing
   * changes.
   */
  settle(usageOrResponse: TokensUsed): Promise<void>
  /** Gives back everything the decision took (the call failed or was not made). */
  cancel(): Promise<void>
}

/** Options of {@link Guard.run}. */
/** `guard.acquire`'s options. */
export interface GuardAcquireOptions {
  /** Wait up to `maxMs` for capacity instead of answering a refusal at once (FIFO within the process). */
  wait?: { maxMs: number }
  /** Stops the wait (the refusal is answered). */
  signal?: AbortSignal
}

export interface GuardRunOptions {
  /** Wait up to `maxMs` for capacity instead of refusing (FIFO within the process). */
  wait?: { maxMs: number }
  /** Retry the provider's 429s and 5xx ({@link withRetry}'s options). */
  retry?: RetryOptions
  signal?: AbortSignal
}

/**
 * One decision per LLM call over every limit, budget and key: all or nothing, nothing charged
 * on refusal, one Redis round trip to acquire and one to settle on a single server (see the
 * README for a Cluster), synchronously answered in-process.
 *
 * @example
 * const guard = new Guard({
 *   limits: [
 *     { id: 'user-rpm', scope: (ctx) => ctx.user, requests: 20, per: '1m' },
 *     { id: 'org-usd', scope: (ctx) => ctx.org, usd: 50, per: 'month' },
 *     { id: 'model-concurrency', scope: (ctx) => ctx.model, concurrent: 8 },
 *   ],
 * })
 * const d = await guard.acquire({ user, org, model }, { model, messages, maxTokens: 500 })
 * if (!d.ok) return res.status(429).set('retry-after', String(Math.ceil((d.retryAfterMs ?? 60_000) / 1000))).end()
 * try {
 *   const completion = await openai.chat.completions.create({ model, messages, max_tokens: 500 })
 *   await d.settle(completion)
 * } catch (e) {
 *   await d.cancel()
 *   throw e
 * }
 */
export declare class Guard<Ctx = any> {
  constructor(options: GuardOptions<Ctx>)
  /** The limits' ids, in policy order. */
  readonly limits: string[]
  readonly prefix: string
  readonly holdTtlMs: number
  /** The policy as given, without the scope functions and leases: `{ id, <measure>, per?, timeZone? }` per limit, in order (leases: {@link Guard.leases}). */
  readonly policy: ReadonlyArray<Readonly<Omit<GuardLimit, 'scope' | 'lease'>>>
  /** The output estimate of a request without `maxTokens` (`options.defaultMaxTokens`). */
  readonly defaultMaxTokens: number
  /**
   * One decision over every limit that applies to `ctx`. Rejects with a typed error for bad
   * input (nothing counted). `options.wait: { maxMs }` waits up to `maxMs` for capacity
   * (as `run`; `options.signal` stops the wait) before answering a refusal.
   */
  acquire(ctx: Ctx, request: GuardRequest, options?: GuardAcquireOptions): Promise<GuardDecision>
  /** Acquire, `fn`, settle with what `fn` returned (or cancel when it threw). Refused: rejects with `ERR_TOLLGATE_LIMITED`. */
  run<T>(ctx: Ctx, request: GuardRequest, fn: (call: { key: QuotaKey | null; signal?: AbortSignal; attempt: number; requestOptions: RetryRequestOptions }) => Promise<T>, options?: GuardRunOptions): Promise<T>
  /** What every applicable limit has left for `ctx` (as `decision.remaining`); counts nothing. */
  peek(ctx: Ctx): Promise<{ remaining: Record<string, number> } & Answered>
  /**
   * The provider said the routed key `key` (its id, or a decision's `key`) is exhausted until
   * `untilMs` (epoch ms): paused in the routing Quota for `ctx`'s routing scope
   * (`quota.pause`), so no process sharing the store routes to it before then. Resolves false
   * without routing. The SDK wrappers call it on a 429 or a remaining of 0.
   */
  pause(ctx: Ctx, key: string | { id: string }, untilMs: number): Promise<boolean>
  /**
   * Clears `ctx`'s usage on every limit that applies to it (each limit's meter for its
   * `scope(ctx)`: counts, window and holds), in the store — for every process sharing it. A
   * decision made before and ended after changes nothing.
   */
  reset(ctx: Ctx): Promise<void>
  /** `decision.settle(usageOrResponse)`; a decision from another guard is `ERR_TOLLGATE_INVALID_ARG`. */
  settle(decision: GuardDecision, usageOrResponse: TokensUsed): Promise<void>
  /** `decision.cancel()`. */
  cancel(decision: GuardDecision): Promise<void>
  /**
   * Decisions, refusals by limit id, cache answers (`cached`), store errors; with leased limits
   * on Redis, `lease`: what this process holds under leases, per limit id.
   */
  stats(): ClassStats & { cached: number; lease?: Record<string, LeaseStats> }
  /** The lease settings in force per leased limit id (empty without leases or on a MemoryStore). */
  readonly leases: Record<string, LeaseInForce>
  /**
   * Gives back what this guard has leased (unused units are free for other processes at once);
   * a later call takes a new lease. Call it before closing the store (leases are also given
   * back on 'beforeExit'; a lease never given back expires on its own). Resolves at once
   * without leases.
   */
  close(): Promise<void>
  /** Pushes the usage of calls admitted during an outage to Redis now; true when none is left. */
  flush(): Promise<boolean>
}

/** The class of guard decisions (for `instanceof`). */
export declare const Decision: { prototype: GuardDecision }

// ---- CostTracker -----------------------------------------------------------------------------

/** Options of {@link CostTracker}. */
export interface CostTrackerOptions extends StoreFailureOptions {
  /** USD per UTC day; `null` for none. Default 50 (the cost patterns article's). */
  dailyBudget?: number | null
  /** USD per UTC month; `null` for none. Default 1000 (the cost patterns article's). */
  monthlyBudget?: number | null
  /** Alert when spend rises above this fraction of a budget. Default 0.8 (the cost patterns article's). */
  alertThreshold?: number
  /** Several thresholds instead of `alertThreshold`, e.g. `[0.5, 0.8, 1]`. */
  alertThresholds?: number[]
  /**
   * Called once per threshold per period (across every process sharing the store) when spend
   * rises above it, with the cost patterns article's message. Default: `console.warn('[COST ALERT] ' + message)`.
   * A callback that throws becomes a process warning; the spend is counted either way.
   */
  onAlert?: (message: string, alert: CostAlert) => void
  /** Seconds an unsettled reservation keeps counting. Default 600. */
  holdTtlSeconds?: number
  /**
   * Days a day's spend (total, per model, per tag) stays readable by `history()` after the day
   * ends: 1 to 400, default 35. Hours are kept 48 h.
   */
  historyDays?: number
  /**
   * Key prefix. Default `'tollgate:cost:'`. Keys are `{prefix}day:2026-11-25`,
   * `{prefix}month:2026-11`, their `:tags` hashes and `{prefix}hour:2026-11-25T13`: one hash
   * tag, one Cluster slot.
   */
  prefix?: string
  /** The tracker's clock (ms since the epoch); default the store's `now`, else `Date.now`. Days are UTC days of this clock. */
  now?: () => number
}

/** What {@link CostTrackerOptions.onAlert} receives. */
export interface CostAlert {
  period: 'daily' | 'monthly'
  /** `2026-11-25` or `2026-11`. */
  label: string
  threshold: number
  spent: number
  budget: number
}

/** One period's ledger. */
export interface CostPeriod {
  /** `2026-11-25` (daily) or `2026-11` (monthly), UTC. */
  period: string
  /** USD spent (exact to 1e-9). */
  spent: number
  /** USD held by live reservations. */
  reserved: number
  budget: number | null
  /** `budget − spent − reserved`, at least 0; null without a budget. */
  remaining: number | null
  /** When the period ends (ms since the epoch). */
  resetsAt: number
}

/** Today's and this month's ledgers. */
export interface CostTotals extends Answered {
  daily: CostPeriod
  monthly: CostPeriod
}

/** Spend per tag: `{ feature: { chat: 1.25, search: 0.5 } }`. */
export type CostByTag = Record<string, Record<string, number>>

/** Tags a cost is also counted under: low-cardinality labels such as feature, user or org. */
export type CostTags = Record<string, string | number | boolean | null | undefined>

/** A reservation made by {@link CostTracker.reserve}. Plain data: it can cross processes. */
export interface CostHold {
  id: string
  estimateUsd: number
  /** When the hold stops counting if never settled (ms since the epoch). */
  expiresAt: number
  /** The model `settle` prices a usage object with. */
  model?: string
  tags?: CostTags
}

/** One UTC day's spend in {@link CostTracker.history}, in USD. */
export interface CostHistoryDay {
  /** `2026-11-25` */
  date: string
  /** When the day starts, ms since 1970. */
  start: number
  spent: number
  /** Spend per model (calls recorded or settled with a model). */
  byModel: Record<string, number>
  /** Spend per tag, as in `totals()`. */
  byTag: CostByTag
}

/** One UTC hour's spend in {@link CostTracker.history}, in USD. */
export interface CostHistoryHour {
  /** `2026-11-25T13` */
  hour: string
  /** When the hour starts, ms since 1970. */
  start: number
  spent: number
  byModel: Record<string, number>
}

/**
 * Spend per UTC day and month, per tag, with budgets enforced before the call: the cost patterns article's
 * `CostTracker` (`recordUsage`, `isOverBudget`, `onAlert`) made atomic on Redis, exact at the
 * day boundary, and with reservations so concurrent workers cannot overspend. Amounts are
 * counted in integer nano-dollars.
 *
 * @example
 * const tracker = new CostTracker(redis, { dailyBudget: 25, monthlyBudget: 500 })
 * const { estimatedCost } = estimateCost(prompt, 500, 'gpt-4o')
 * const { hold } = await tracker.reserve(estimatedCost, { model: 'gpt-4o', tags: { feature: 'chat' } })
 * if (!hold) throw new Error('Daily LLM budget exhausted')
 * try {
 *   const completion = await openai.chat.completions.create({ model: 'gpt-4o', messages })
 *   await tracker.settle(hold, completion) // priced from completion.usage
 * } catch (e) {
 *   await tracker.release(hold)
 *   throw e
 * }
 */
export declare class CostTracker {
  constructor(store?: StoreLike, options?: CostTrackerOptions)
  constructor(options: CostTrackerOptions)
  get dailyBudget(): number | null
  get monthlyBudget(): number | null
  /** Sorted, without duplicates. */
  get alertThresholds(): number[]
  get prefix(): string
  /** Days a day's spend stays readable by `history()` after it ends. */
  get historyDays(): number
  /**
   * Counts what a finished call cost and resolves to that cost in USD. `usage` is tollgate's
   * {@link Usage} shape or a provider response ({@link usageFrom} reads it). Rejects with
   * `ERR_TOLLGATE_UNKNOWN_MODEL` for a model without a price (the cost patterns article silently counted $0).
   */
  recordUsage(model: string, usage: Partial<Usage> | object | StreamUsage, options?: { tags?: CostTags }): Promise<number>
  /** The cost patterns article's form: `(model, inputTokens, outputTokens, metadata)`; `metadata` is counted as tags. */
  recordUsage(model: string, inputTokens: number, outputTokens: number, metadata?: CostTags): Promise<number>
  /** Counts a cost already known in USD (a tool call, an image). */
  recordCost(usd: number, options?: { tags?: CostTags }): Promise<CostTotals>
  /**
   * Holds `estimateUsd` if `spent + reserved + estimate ≤ budget` for the day and the month;
   * `hold` is null when refused. A `model` without a price rejects here
   * (`ERR_TOLLGATE_UNKNOWN_MODEL`), before the call is made.
   */
  reserve(estimateUsd: number, options?: { model?: string; tags?: CostTags }): Promise<CostTotals & { allowed: boolean; hold: CostHold | null }>
  /**
   * Replaces a hold by what the call really cost: USD, or a usage object / provider response
   * priced with the hold's model (or `options.model`). Counted in the current day, so a call
   * that ran past midnight lands in the new day. Settle each hold once.
   */
  settle(
    hold: CostHold,
    usage: number | Partial<Usage> | object | StreamUsage,
    options?: { model?: string; tags?: CostTags },
  ): Promise<CostTotals & { cost: number; allowed: boolean }>
  /** Drops a hold without counting anything. */
  release(hold: CostHold): Promise<CostTotals>
  /** The cost patterns article's answer: `spent ≥ budget` for each period, and the amounts spent. */
  isOverBudget(): Promise<{ daily: boolean; monthly: boolean; dailySpent: number; monthlySpent: number }>
  /** Today's and this month's ledgers, with the spend per tag unless `{ tags: false }`. */
  totals(options?: { tags?: true }): Promise<{ daily: CostPeriod & { byTag: CostByTag }; monthly: CostPeriod & { byTag: CostByTag } }>
  totals(options: { tags: false }): Promise<CostTotals>
  /**
   * Spend per UTC day for the last `days` days (default 7, at most 400) and per UTC hour for
   * the last `hours` hours (default 24, at most 48), oldest first, ending with today and the
   * current hour; days and hours without spend are listed with 0. Read from the store (every
   * process's spend), written by the same call that records it.
   *
   * @example
   * const { days, hours } = await tracker.history({ days: 30, hours: 24 })
   * console.log(days.at(-1)?.spent === (await tracker.totals()).daily.spent) // true
   */
  history(options?: { days?: number; hours?: number }): Promise<{ days: CostHistoryDay[]; hours: CostHistoryHour[] }>
  /** This instance's counters. */
  stats(): ClassStats
  /** Pushes counts made during a Redis outage to Redis now; resolves to true when none is left. */
  flush(): Promise<boolean>
}

// ---- ModelTiers ------------------------------------------------------------------------------

/** One tier: the model and whatever else the caller wants back (maxTokens, description, …). */
export interface ModelTier {
  model: string
  maxTokens?: number
  description?: string
  [key: string]: unknown
}

/** The cost patterns article's tiers: simple (gpt-4.1-nano, 150), standard (gpt-4o-mini, 1000), complex (gpt-4o, 4000). */
export declare const MODEL_TIERS: Readonly<Record<'simple' | 'standard' | 'complex', Readonly<ModelTier>>>

/** Options of {@link ModelTiers}. */
export interface ModelTiersOptions {
  /** Tiers by name, cheapest first. Default {@link MODEL_TIERS}. */
  tiers?: Record<string, ModelTier>
  /** The tier of an unknown task. Default `'standard'` when there is one, else the first. */
  defaultTier?: string
  /** Below this many input tokens any task but the top tier goes to the cheapest tier (the cost patterns article's rule). Default 50; 0 turns it off. */
  shortInputTokens?: number
  /** Drives the budget-aware downgrade. */
  tracker?: CostTracker
  /**
   * Once `(spent + reserved) / budget` (the larger of daily and monthly) is above `above`, no
   * tier above `maxTier` is chosen. Default the cost patterns article's: above 0.9 the second-best tier, above
   * 0.95 the cheapest.
   */
  downgrades?: { above: number; maxTier: string }[]
}

/** What {@link ModelTiers.selectModel} chose. */
export type ModelSelection = ModelTier & {
  tier: string
  requestedTier: string
  /**
   * `'requested'`: the task's own tier; `'unknown-task'`: the task is not a tier name, so
   * `defaultTier` was used; `'short-input'` / `'budget'`: moved down by those rules.
   */
  reason: 'requested' | 'unknown-task' | 'short-input' | 'budget'
  /** The larger of daily and monthly `(spent + reserved) / budget`, or null without a tracker. */
  budgetUsed: number | null
}

/**
 * Model tiering: the cost patterns article's `selectModel` over configurable tiers, downgrading as the budget
 * runs out.
 *
 * @example
 * const tiers = new ModelTiers({ tracker })
 * const { model, maxTokens } = await tiers.selectModel('complex', { inputTokens: countTokens(prompt, 'gpt-4o') })
 */
export declare class ModelTiers {
  constructor(options?: ModelTiersOptions)
  /** Tier names, cheapest first. */
  get tiers(): string[]
  /** The tier for `task` (a tier name; unknown tasks get `defaultTier`). */
  selectModel(task: string, options?: { inputTokens?: number }): Promise<ModelSelection>
}
// ---- createLLMRateLimiter (multi-model job limiter) -----------------------------------------

/** Per model: limits (0 or missing = not enforced) and prices in USD per 1M tokens. */
export interface ModelRateLimitConfig {
  requestsPerMinute?: number
  requestsPerDay?: number
  tokensPerMinute?: number
  tokensPerDay?: number
  /** Jobs in flight at once (across every instance with a Redis backend). */
  maxConcurrentRequests?: number
  minCapacity?: number
  maxCapacity?: number
  /**
   * USD per 1,000,000 tokens; `cached` (default `input`) bills the `cachedTokens` part of
   * `inputTokens`. Without it the built-in catalog prices the model id ({@link priceOf}); a
   * model with neither has no price (its jobs' `cost` is null).
   */
  pricing?: { input: number; cached?: number; output: number }
}
export interface JobTypeResourceConfig {
  estimatedUsedTokens?: number
  estimatedNumberOfRequests?: number
  estimatedUsedMemoryKB?: number
  ratio?: { initialValue?: number; flexible?: boolean }
  /** Per model: how long a job waits for that model before trying the next; 0 = no wait. Default: to the next minute + 5 s. */
  maxWaitMS?: Record<string, number>
}
export interface RatioAdjustmentConfig {
  highLoadThreshold?: number
  lowLoadThreshold?: number
  maxAdjustment?: number
  minRatio?: number
  adjustmentIntervalMs?: number
  releasesPerAdjustment?: number
  minJobTypeCapacity?: number
}
export interface Availability {
  slots: number
  tokensPerMinute: number | null
  tokensPerDay: number | null
  requestsPerMinute: number | null
  requestsPerDay: number | null
  concurrentRequests: number | null
  memoryKB: number | null
}
export type AvailabilityChangeReason = 'adjustment' | 'tokensMinute' | 'tokensDay' | 'requestsMinute' | 'requestsDay' | 'concurrentRequests' | 'memory' | 'distributed'
export interface OverageEvent {
  resourceType: 'tokens' | 'requests'
  estimated: number
  actual: number
  overage: number
  timestamp: number
}
/** Made by {@link createRedisBackend}. */
export interface LLMRateLimiterBackend {
  readonly kind: 'redis'
  readonly keyPrefix: string
  readonly heartbeatIntervalMs: number
  readonly instanceTimeoutMs: number
  readonly pollIntervalMs: number
}
export interface LLMRateLimiterConfig extends StoreFailureOptions {
  models: Record<string, ModelRateLimitConfig>
  /** Models in the order jobs try them; required with 2+ models. `order` is accepted too. */
  escalationOrder?: readonly string[]
  order?: readonly string[]
  /** Job types; default one type `default` with no estimates. */
  resourceEstimationsPerJob?: Record<string, JobTypeResourceConfig>
  ratioAdjustmentConfig?: RatioAdjustmentConfig
  memory?: { freeMemoryRatio?: number; recalculationIntervalMs?: number; maxMemoryKB?: number }
  backend?: LLMRateLimiterBackend
  /** `'fixed'` (default): windows aligned to the minute and the UTC day. `'sliding'`: every trailing minute / 24 h (buckets of 1 s / 10 min, counted conservatively). */
  windows?: 'fixed' | 'sliding'
  /** Attempts of one job across delegations (default 2 × the models in the order). */
  maxAttempts?: number
  instanceId?: string
  /** Injected clock (ms), for tests. */
  now?: () => number
  onAvailableSlotsChange?: (availability: Availability, reason: AvailabilityChangeReason, modelId: string, adjustment?: Partial<Availability>) => void
  onOverage?: (event: OverageEvent) => void
  onLog?: (message: string, data?: Record<string, unknown>) => void
}
/**
 * A job's usage. `inputTokens` counts every input token, cached ones included (as
 * {@link usageFrom} and every class count them): limits count `inputTokens + outputTokens`.
 */
export interface TokenUsageEntry {
  requestCount: number
  inputTokens: number
  /** The part of `inputTokens` read from the provider's cache (billed at `pricing.cached`). */
  cachedTokens: number
  outputTokens: number
}
/** What a job reports: the token fields, or `usage` with anything {@link usageFrom} reads (`requestCount` then defaults to 1). */
export type JobUsage =
  | (Partial<TokenUsageEntry> & { usage?: undefined })
  | { requestCount?: number; usage: object }
export type JobResult<T> = JobUsage & { data: T }
export interface UsageEntryWithCost extends TokenUsageEntry {
  modelId: string
  /** USD, as costOf prices it; null for a model with no price. */
  cost: number | null
}
export interface JobCallbackContext {
  jobId: string
  /** Sum of the attempts' costs; null when an attempt ran on a model with no price. */
  totalCost: number | null
  usage: UsageEntryWithCost[]
}
export interface LLMJobResult<T> {
  data: T
  modelUsed: string
}
/** Records `usage` on the model that ran; `delegate` (default true) moves the job to the next model. */
export type JobReject = (usage: JobUsage, options?: { delegate?: boolean }) => void
export type LLMJob<T, Args> = (args: Args & { modelId: string }, reject: JobReject) => JobResult<T> | Promise<JobResult<T>>
export interface QueueJobOptions<T, Args extends object = Record<string, unknown>> {
  jobId: string
  /** Required when there are several job types. */
  jobType?: string
  job: LLMJob<T, Args>
  args?: Args
  onComplete?: (result: LLMJobResult<T>, context: JobCallbackContext) => void
  onError?: (error: Error, context: JobCallbackContext) => void
}
export interface WindowCounterStats {
  current: number
  limit: number
  remaining: number
  resetsInMs: number
}
export interface MemoryStats {
  activeKB: number
  maxCapacityKB: number
  availableKB: number
  systemAvailableKB: number
}
export interface ModelStats {
  memory?: MemoryStats
  concurrency?: { active: number; limit: number; available: number; waiting: number }
  requestsPerMinute?: WindowCounterStats
  requestsPerDay?: WindowCounterStats
  tokensPerMinute?: WindowCounterStats
  tokensPerDay?: WindowCounterStats
}
export interface JobTypeStats {
  jobTypes: Record<
    string,
    {
      currentRatio: number
      initialRatio: number
      flexible: boolean
      inFlight: number
      allocatedSlots: number
      resources: { estimatedNumberOfRequests?: number; estimatedUsedTokens?: number; estimatedUsedMemoryKB?: number }
    }
  >
  totalSlots: number
  lastAdjustmentTime: number | null
  modelJobTypes?: Record<string, Record<string, { allocated: number; inFlight: number }>>
}
export interface LLMRateLimiterStats {
  models: Record<string, ModelStats>
  memory?: MemoryStats
  jobTypes: JobTypeStats
  /** With a Redis backend: acquires decided, Redis calls, store errors and fallbacks taken. */
  store?: Omit<ClassStats, 'blockedLocally'>
}
export interface ActiveJobInfo {
  jobId: string
  jobType: string
  status: 'waiting-for-capacity' | 'waiting-for-model' | 'processing'
  queuedAt: number
  startedAt: number | null
  currentModelId: string | null
  triedModels: string[]
  waitStartedAt: number | null
  maxWaitMS: number | null
  timeoutAt: number | null
}
export interface AllocationInfo {
  instanceCount: number
  pools: Record<string, { totalSlots: number; tokensPerMinute: number; requestsPerMinute: number; tokensPerDay: number; requestsPerDay: number }>
}
export interface LLMRateLimiterInstance {
  queueJob<T, Args extends object = Record<string, unknown>>(options: QueueJobOptions<T, Args>): Promise<LLMJobResult<T>>
  hasCapacity(): boolean
  hasCapacityForModel(modelId: string): boolean
  hasCapacityForJobType(jobType: string): boolean
  getAvailableModel(): string | null
  getStats(): LLMRateLimiterStats
  getModelStats(modelId: string): ModelStats
  getJobTypeStats(): JobTypeStats
  getActiveJobs(): ActiveJobInfo[]
  /** The fair share per instance from the last heartbeat (Redis backend), else null. */
  getAllocation(): AllocationInfo | null
  getInstanceId(): string
  /** Registers with the backend and starts heartbeats (also done by the first queueJob). */
  start(): Promise<void>
  /** Clears timers, fails waiting jobs (`ERR_TOLLGATE_LIMITER_STOPPED`), unregisters. Until `start()` again, `queueJob` rejects with `ERR_TOLLGATE_LIMITER_STOPPED`. */
  stop(): Promise<void>
  /**
   * With a Redis backend: pushes to Redis now what waits for it — the usage of jobs granted
   * while Redis was away (`'fail-open'`, `'local'`), releases that got no reply and the
   * cancellation of acquires that got none (every policy; each counts once however often it is
   * sent). Resolves true when none is left. Call it before exiting after an outage.
   */
  flush(): Promise<boolean>
}
/**
 * Queues LLM jobs over several models with per-model limits and fallback. An option name it
 * does not know (`{ rpm: 5 }`) throws `ERR_TOLLGATE_UNKNOWN_OPTION` naming the closest one.
 *
 * @example
 * const limiter = createLLMRateLimiter({
 *   models: { 'gpt-4o': { tokensPerMinute: 30_000, pricing: { input: 2.5, cached: 1.25, output: 10 } } },
 *   resourceEstimationsPerJob: { chat: { estimatedUsedTokens: 2_000, estimatedNumberOfRequests: 1 } },
 * })
 * const { data } = await limiter.queueJob({ jobId: '1', jobType: 'chat', job: async ({ modelId }) => ({ requestCount: 1, inputTokens: 900, cachedTokens: 0, outputTokens: 300, data: modelId }) })
 */
export declare function createLLMRateLimiter(config: LLMRateLimiterConfig): LLMRateLimiterInstance
/** Global limits through Redis, exact for any number of instances. */
export declare function createRedisBackend(
  config: string | { url?: string; client?: unknown; keyPrefix?: string; heartbeatIntervalMs?: number; instanceTimeoutMs?: number; pollIntervalMs?: number },
): LLMRateLimiterBackend
/** `(60 − seconds of now + 5) × 1000`: the default maxWaitMS. */
export declare function getDefaultMaxWaitMS(now?: number): number
export declare const DEFAULT_RATIO_ADJUSTMENT_CONFIG: Readonly<Required<RatioAdjustmentConfig>>

// ---- ProviderLimiter (one global limit per provider) ----------------------------------------

export interface ProviderLimiterOptions extends StoreFailureOptions {
  /** Per provider: `points` per `duration` seconds (default 60); keys `<keyPrefix>:<scope>` (default `ratelimit:<provider>`). */
  providers: Record<string, { points: number; duration?: number; keyPrefix?: string }>
}
export interface ProviderDecision extends Answered {
  allowed: boolean
  remaining: number
  /** 0 when allowed; else ms until the counter refills. */
  retryInMs: number
  /** When the current period ends (ms since the epoch). */
  resetAt: number
}
export interface ProviderHealth {
  status: 'ok' | 'degraded'
  redis: { connected: boolean; enabled: boolean; usedMemory: string | null; connectedClients: string | null }
  rateLimiting: {
    mode: 'local' | 'distributed'
    local: Record<string, { running: number; queued: number; done: number }>
    distributed: Record<string, { type: 'local' | 'distributed'; redis: boolean }>
  }
}
/**
 * One limit per LLM provider shared by every worker (a self-expiring Redis hash with `points`
 * and `expire`, inspectable with redis-cli), and a health report.
 *
 * @example
 * const limits = new ProviderLimiter(redis, { providers: { openai: { points: 50_000, duration: 60 } } })
 * if ((await limits.tryConsume('openai', 'global')).allowed) callOpenAI()
 */
export declare class ProviderLimiter {
  constructor(store: StoreLike, options: ProviderLimiterOptions)
  constructor(options: ProviderLimiterOptions)
  tryConsume(provider: string, scope?: string, points?: number): Promise<ProviderDecision>
  /** Runs `fn` once the provider has a point for it, waiting for refills up to `maxWaitMs` (default 60 s). */
  run<T>(provider: string, fn: () => T | Promise<T>, options?: { scope?: string; maxWaitMs?: number }): Promise<T>
  health(): Promise<ProviderHealth>
  /** This instance's counters (refusals: `points`). */
  stats(): ClassStats
  /** Pushes points taken during a Redis outage to Redis now; resolves true when none is left. */
  flush(): Promise<boolean>
}

// ---- SemanticCache ---------------------------------------------------------------------------

/** Options of {@link SemanticCache}. */
export interface SemanticCacheOptions extends StoreFailureOptions {
  /**
   * Your embedding function (OpenAI embeddings, a local model, …): the text of the last user
   * message → its embedding. tollgate never calls a network itself. Every embedding of one
   * cache must have the same number of dimensions (at most 65,536).
   */
  embed: (text: string) => number[] | Float32Array | Promise<number[] | Float32Array>
  /** Least cosine similarity served, above 0 and at most 1. Default 0.95. */
  threshold?: number
  /** Seconds an entry stays cached. Default 3600. */
  ttl?: number
  /** Key prefix. Default `'tollgate:semantic:'`. Redis keys are `{prefix}e:<key>`, `{prefix}ids`, `{prefix}log`. */
  prefix?: string
  /** Entries kept; beyond it the oldest are evicted. Default 10,000; at most 10,000,000. */
  maxEntries?: number
  /**
   * Who may share answers. Default: the model plus a hash of every message except the last
   * user message (system prompt, earlier turns). A string (a tenant id) or a function of the
   * request replaces that default; the model is always part of the scope.
   */
  scope?: string | ((model: string, messages: any[]) => string)
  /**
   * Entries in one scope from which lookups are approximate: a scan of the vectors' sign bits
   * picks 256 candidates, scored exactly. Default 2048; below it every lookup is an exact scan.
   */
  approximateFrom?: number
  /**
   * Longest wait for `embed`, in ms: past it `get` and `set` reject with
   * `ERR_TOLLGATE_CALLBACK_TIMEOUT` instead of hanging. Default 10,000.
   */
  embedTimeoutMs?: number
}

/** Per-call options of {@link SemanticCache}. */
export interface SemanticCallOptions {
  /** This request's scope (a tenant id), replacing the cache's `scope`. */
  scope?: string | ((model: string, messages: any[]) => string)
}

/** A request answered from the cache. */
export interface SemanticHit<T = unknown> extends Answered {
  hit: true
  /** The cached response (a fresh copy). */
  response: T
  /** Cosine similarity of the two questions' embeddings; 1 for the identical request. */
  similarity: number
  /** The text of the question whose answer is served. */
  matchedQuery: string
  /** The entry's key: give it (or the whole hit) to {@link SemanticCache.reportFalseHit}. */
  key: string
}

export interface SemanticMiss extends Answered {
  hit: false
}

/** What {@link SemanticCache.stats} resolves to: the lookup counters and every {@link ClassStats} counter. */
export interface SemanticCacheStats extends ClassStats {
  /** Live entries in the cache (every process's, on Redis); null when Redis could not say ('fail-open'). */
  entries: number | null
  /** This instance's hits, exact and semantic. */
  hits: number
  exactHits: number
  semanticHits: number
  misses: number
  /** Hits reported wrong with `reportFalseHit`. */
  falseHits: number
  /** hits / (hits + misses); 0 before the first lookup. */
  hitRate: number
  /** Mean time of `get` in ms, without the time spent in `embed`. */
  avgLookupMs: number
}

/**
 * Answers a question from the cached answer of a similar one. The identical request is found
 * first without calling `embed`; otherwise the last user message is embedded and the most
 * similar cached question of the same scope (model + context or tenant) with similarity ≥
 * `threshold` is served — unless the two texts differ in negation ("enable"/"disable",
 * "not", …) or in numbers ("top 5"/"top 10", dates, amounts). The vector index lives in Rust:
 * an exact SIMD scan, or for large scopes a sign-bit scan with exact rescoring. On Redis the entries are shared by
 * every process; each keeps its own index, brought up to date from the cache's change log on
 * every lookup.
 *
 * @example
 * const cache = new SemanticCache(redis, { embed: (text) => embedWithOpenAI(text) })
 * const found = await cache.get('gpt-4o', messages)
 * if (found.hit) return found.response
 * const result = await callModel(messages)
 * await cache.set('gpt-4o', messages, result)   // reuses the embedding computed by get
 */
export declare class SemanticCache {
  constructor(store: StoreLike | undefined, options: SemanticCacheOptions)
  constructor(options: SemanticCacheOptions)
  get threshold(): number
  get ttl(): number
  get prefix(): string
  get maxEntries(): number
  /** The cached answer to this request or a similar one. */
  get<T = unknown>(model: string, messages: any[], options?: SemanticCallOptions): Promise<SemanticHit<T> | SemanticMiss>
  /** Caches `response` (anything JSON can hold) for `ttl` seconds, replacing this request's entry. */
  set(model: string, messages: any[], response: unknown, options?: SemanticCallOptions): Promise<void>
  /** Removes this request's entry; resolves `true` when there was one. */
  delete(model: string, messages: any[], options?: SemanticCallOptions): Promise<boolean>
  /** Evicts the entry that gave a wrong hit and counts it in `stats().falseHits`; resolves `true` when it was there. */
  reportFalseHit(hit: SemanticHit<unknown> | string): Promise<boolean>
  /** Removes every entry under this cache's prefix; resolves how many there were. */
  clear(): Promise<number>
  /** Lookup counters and the class counters; a Promise, since on Redis `entries` is read from the store. */
  stats(): Promise<SemanticCacheStats>
}
