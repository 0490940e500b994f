'use strict'
// Guard: one decision per LLM call over every limit, budget and key, all or nothing.
//
// A policy is a list of limits, each applied to the scope its `scope(ctx)` names (a user, an
// org, a model, an API key…). `acquire` estimates the call (tokens from the messages and
// `maxTokens`, dollars from the price catalog), asks every applicable limit at once — in one
// lock on a MemoryStore, one Lua script on Redis — and either admits the call on all of them or
// charges none. `settle` replaces the estimates by the real usage; `cancel` gives everything
// back; a decision never ended expires with its hold (`holdTtlMs`) and gives its capacity
// back. The meters are engine/guard.rs (and store/redis/scripts/guard.lua, its Redis twin).

const native = require('./native')
const { fromNative, rethrow, invalidArg, outOfRange, withCode, codes } = require('./errors')
const { storeAndOptions, MemoryStore, kNative, kClock } = require('./stores')
const { kLocalTwin, newStats, bump, snapshot, flush, POLICY_OPTIONS } = require('./policy')
const { storePolicy } = require('./setup')
const v = require('./validate')
const { requireUsage, MAX_TOKENS } = require('./usage')
const { countMessageTokens } = require('./tokens')
const { costNanoParts, toNano, toUsd } = require('./cost')
const { withRetry } = require('./retry')
const { telemetryFor } = require('./telemetry')
const { version } = require('../package.json')

const MEASURES = ['requests', 'tokens', 'inputTokens', 'outputTokens', 'usd', 'concurrent']
const LIMIT_KEYS = ['id', 'scope', 'per', 'timeZone', ...MEASURES]
const OPTIONS = ['limits', 'routing', 'cache', 'tracker', 'holdTtlMs', 'defaultMaxTokens', 'prefix', 'telemetry', ...POLICY_OPTIONS]
const REQUEST_KEYS = ['model', 'messages', 'tokens', 'maxTokens', 'params', 'tags']
const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DAY = 86_400_000
const MAX_WINDOW_MS = 366 * DAY
const MAX_HOLD_MS = 7 * DAY
/** How often a caller waiting on a Redis-backed guard looks again (other processes free capacity unseen). */
const POLL_MS = 50
const FIELDS = 7
// Meter kinds, as src/binding/guard.rs reads them.
const WINDOW = 0
const PERIOD = 1
const CONCURRENT = 2
const ACQUIRE = 0
const END = 1
const PEEK = 2
const RECORD = 3
const RESET = 4

/** A decision's state. */
const OPEN = 0
const ENDED = 1

/** @internal Whether a guard caches answers (the SDK wrappers build a cache key's params only then). */
const kCaches = Symbol('tollgate.guard.caches')

const ended = (message) => withCode(new TypeError(message), codes.DECISION_ENDED)

/** The error a refused call rejects with (`guard.run`, the SDK wrappers): `ERR_TOLLGATE_LIMITED`, carrying the decision. */
function limitedError(d) {
  const e = withCode(new Error(`refused by limit ${d.limit}${d.retryAfterMs === null ? '' : `; may fit in ${d.retryAfterMs} ms`}`), codes.LIMITED)
  e.decision = d
  e.retryAfterMs = d.retryAfterMs
  e.limit = d.limit
  return e
}

/** `per` → `{ windowMs }` or `{ calendar: 'day' | 'month' }`. */
function perOf(per, name) {
  if (per === 'day' || per === 'month') return { calendar: per }
  if (typeof per === 'number') return { windowMs: v.integer(per, name, 1, MAX_WINDOW_MS) }
  if (typeof per === 'string') {
    const m = /^(\d+)(ms|s|m|h|d)$/.exec(per)
    if (m) {
      const ms = Number(m[1]) * UNITS[m[2]]
      if (ms < 1 || ms > MAX_WINDOW_MS) throw outOfRange(`${name} must be a window from 1 ms to 366 days, got ${JSON.stringify(per)}`)
      return { windowMs: ms }
    }
  }
  throw invalidArg(`${name} must be a sliding window ('1s', '1m', '1h', '1d', '10m', … or milliseconds) or a calendar period ('day' | 'month'), got ${v.describe(per)}`)
}

/** Wall-clock parts of `now` in a time zone, through one cached Intl formatter per zone. */
const formatters = new Map()
function wallClock(timeZone, now) {
  let f = formatters.get(timeZone)
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
    formatters.set(timeZone, f)
  }
  const p = {}
  for (const x of f.formatToParts(now)) p[x.type] = x.value
  const y = Number(p.year)
  const mo = Number(p.month) - 1
  const d = Number(p.day)
  // Milliseconds the zone is ahead of UTC at `now`.
  const offset = Date.UTC(y, mo, d, Number(p.hour), Number(p.minute), Number(p.second)) - Math.floor(now / 1000) * 1000
  return { y, mo, d, offset }
}

/** The UTC instant the wall-clock time `wall` (as a UTC timestamp) happens in `timeZone`. */
function instantOf(timeZone, wall, guessOffset) {
  let t = wall - guessOffset
  // One correction covers a change of offset (daylight saving) between the two.
  const o = wallClock(timeZone, t).offset
  t = wall - o
  return t
}

/** `{ id, end }` of the calendar period holding `now` (ids grow with time). */
function periodOf(calendar, timeZone, now) {
  if (timeZone === null) {
    if (calendar === 'day') {
      const id = Math.floor(now / DAY)
      return { id, end: (id + 1) * DAY }
    }
    const date = new Date(now)
    const y = date.getUTCFullYear()
    const mo = date.getUTCMonth()
    return { id: y * 12 + mo, end: Date.UTC(y, mo + 1, 1) }
  }
  const { y, mo, d, offset } = wallClock(timeZone, now)
  if (calendar === 'day') {
    return { id: Math.floor(Date.UTC(y, mo, d) / DAY), end: instantOf(timeZone, Date.UTC(y, mo, d + 1), offset) }
  }
  return { id: y * 12 + mo, end: instantOf(timeZone, Date.UTC(y, mo + 1, 1), offset) }
}

/** One limit of a policy, validated. */
class Limit {
  constructor(raw, i) {
    const name = `options.limits[${i}]`
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalidArg(`${name} must be an object, got ${v.describe(raw)}`)
    v.knownKeys(raw, LIMIT_KEYS, name)
    if (typeof raw.id !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(raw.id)) {
      throw invalidArg(`${name}.id must be 1 to 64 letters, digits or _ . : -, got ${v.describe(raw.id)}`)
    }
    this.id = raw.id
    const s = raw.scope
    if (typeof s === 'string') {
      Limit.checkScope(s, `${name}.scope`)
      this.scope = () => s
    } else if (typeof s === 'function') {
      this.scope = s
    } else {
      throw invalidArg(`${name}.scope must be a function of the call's context returning the scope (a string, or null to skip the limit), or a fixed string; got ${v.describe(s)}`)
    }
    const given = MEASURES.filter((m) => raw[m] !== undefined)
    if (given.length !== 1) {
      throw invalidArg(`${name} (${raw.id}) must have exactly one measure (${MEASURES.join(', ')}), got ${given.length === 0 ? 'none' : given.join(' and ')}`)
    }
    this.measure = given[0]
    const max = raw[this.measure]
    if (this.measure === 'usd') {
      if (typeof max !== 'number' || !Number.isFinite(max) || max < 0) throw outOfRange(`${name}.usd must be a number of dollars ≥ 0, got ${v.describe(max)}`)
      this.max = toNano(max)
      if (this.max > Number.MAX_SAFE_INTEGER) throw outOfRange(`${name}.usd must be at most ${toUsd(Number.MAX_SAFE_INTEGER)}`)
    } else {
      this.max = v.integer(max, `${name}.${this.measure}`, 0, MAX_TOKENS)
    }
    this.timeZone = null
    if (this.measure === 'concurrent') {
      if (raw.per !== undefined) throw invalidArg(`${name}.per: a concurrent limit counts calls in flight, it has no period`)
      if (raw.timeZone !== undefined) throw invalidArg(`${name}.timeZone: a concurrent limit has no calendar`)
      this.kind = CONCURRENT
      return
    }
    if (raw.per === undefined) throw invalidArg(`${name}.per is required: a window ('1m', '1h', '1d', ms) or a period ('day' | 'month')`)
    const per = perOf(raw.per, `${name}.per`)
    if (per.windowMs !== undefined) {
      if (raw.timeZone !== undefined) throw invalidArg(`${name}.timeZone applies to calendar periods ('day' | 'month'), not to a sliding window`)
      this.kind = WINDOW
      this.windowMs = per.windowMs
      return
    }
    this.kind = PERIOD
    this.calendar = per.calendar
    if (raw.timeZone !== undefined) {
      if (typeof raw.timeZone !== 'string') throw invalidArg(`${name}.timeZone must be an IANA time zone name, got ${v.describe(raw.timeZone)}`)
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: raw.timeZone })
      } catch {
        throw invalidArg(`${name}.timeZone: unknown time zone ${JSON.stringify(raw.timeZone)}`)
      }
      this.timeZone = raw.timeZone === 'UTC' ? null : raw.timeZone
    }
    this.period = { id: 0, end: -Infinity, from: Infinity }
  }

  static checkScope(s, name) {
    if (typeof s !== 'string' || s.length === 0) throw invalidArg(`${name} must return a non-empty string or null, got ${v.describe(s)}`)
    if (s.length > v.MAX_ID_LENGTH) throw outOfRange(`${name} must be at most ${v.MAX_ID_LENGTH} characters, got ${s.length}`)
    if (s.includes('\u0000')) throw invalidArg(`${name} must not hold NUL characters`)
    if (!s.isWellFormed()) throw invalidArg(`${name} must not hold a lone surrogate (half of a UTF-16 pair)`)
  }

  /** The scope of this limit for `ctx`, or null. */
  scopeFor(ctx) {
    let s
    try {
      s = this.scope(ctx)
    } catch (e) {
      const err = invalidArg(`limit ${this.id}: scope(ctx) threw: ${e && e.message ? e.message : String(e)}`)
      err.cause = e
      throw err
    }
    if (s === null || s === undefined) return null
    Limit.checkScope(s, `limit ${this.id}: scope(ctx)`)
    return s
  }

  /** Writes the meter's kind, max and window or period at `now` into `nums` at `o`. */
  write(nums, o, now) {
    nums[o] = this.kind
    nums[o + 1] = this.max
    if (this.kind === WINDOW) {
      nums[o + 2] = this.windowMs
      nums[o + 3] = 0
    } else if (this.kind === PERIOD) {
      const p = this.current(now)
      nums[o + 2] = p.id
      nums[o + 3] = p.end
    } else {
      nums[o + 2] = 0
      nums[o + 3] = 0
    }
  }

  /** The calendar period holding `now` (cached until it ends or the clock goes back). */
  current(now) {
    const p = this.period
    if (now >= p.end || now < p.from) {
      const q = periodOf(this.calendar, this.timeZone, now)
      p.id = q.id
      p.end = q.end
      p.from = now
    }
    return p
  }

  /** What a call with `usage` (input, output tokens, nano-dollars) takes from this limit. */
  amount(input, output, nano) {
    switch (this.measure) {
      case 'requests':
        return 1
      case 'tokens':
        return input + output
      case 'inputTokens':
        return input
      case 'outputTokens':
        return output
      case 'usd':
        return nano
      default:
        return 1
    }
  }

  /** A meter's remaining units as users read them (dollars for a usd limit). */
  shown(units) {
    return this.measure === 'usd' ? toUsd(units) : units
  }
}

/**
 * What `acquire` decided. Admitted (`ok`) decisions hold their estimates until `settle`,
 * `cancel` or their expiry.
 */
class Decision {
  #guard
  #names
  #nums
  #state
  #release
  constructor(guard, fields, names, nums, release) {
    this.#guard = guard
    this.#names = names
    this.#nums = nums
    this.#state = nums === null && release === null ? ENDED : OPEN
    this.#release = release
    // The fields one by one (not Object.assign): every decision gets the same shape.
    this.ok = fields.ok
    this.limit = fields.limit
    this.retryAfterMs = fields.retryAfterMs
    this.remaining = fields.remaining
    this.key = fields.key
    this.cached = fields.cached
    if ('fallback' in fields) this.fallback = fields.fallback
    if ('reason' in fields) this.reason = fields.reason
  }

  /** Whether this decision belongs to `guard` (its holds are on its meters). */
  static belongs(d, guard) {
    return d instanceof Decision && d.#guard === guard
  }

  /**
   * Replaces every estimate by the real usage (a provider response, a stream's final chunk, a
   * finished `streamUsage()` or tollgate's Usage): tokens and dollars refunded or charged,
   * concurrency released, the quota key committed, the cost recorded, the response cached.
   */
  settle(usageOrResponse) {
    return this.#guard._end(this, usageOrResponse, false)
  }

  /** Gives back everything the decision took (the call failed or was not made). */
  cancel() {
    return this.#guard._end(this, undefined, true)
  }

  /** @internal */
  static take(d) {
    if (d.#state !== OPEN) return null
    d.#state = ENDED
    return { names: d.#names, nums: d.#nums, release: d.#release }
  }

  /** @internal Ended by the guard that made it (for errors that leave it open). */
  static reopen(d, taken) {
    d.#state = OPEN
    d.#names = taken.names
    d.#nums = taken.nums
  }
}

class Guard {
  #core
  #memory
  #clock
  #limits
  #prefix
  #holdMs
  #defaultMaxTokens
  #routing
  #cache
  #tracker
  #stats = newStats()
  #cachedHits = 0
  /** OpenTelemetry instruments (lib/telemetry.js), or null. */
  #telemetry
  #byId
  #policy
  #fallback = null
  /** Every limit's id (in order) → 0: what `remaining` is copied from when every limit applies. */
  #allRemaining = {}
  /** Scratch buffers reused by every in-process call, one per number of applicable limits: no typed array is made per call. */
  #nums = []
  #out = new Float64Array(0)
  /** Callers waiting for capacity (`run` with `wait`), oldest first. */
  #waiters = []
  /** Grows each time this process frees capacity (a wake-up is never lost mid-acquire). */
  #freedCount = 0
  /** Decision observers (tollgate/dashboard): none unless a dashboard watches this guard. */
  #observers = []

  constructor(options) {
    const o = v.options(options, 'options')
    v.knownKeys(o, ['store', ...OPTIONS], 'options')
    const [s] = storeAndOptions(o.store, {}, 'Guard')
    if (!Array.isArray(o.limits)) throw invalidArg(`options.limits must be an array of limits, got ${v.describe(o.limits)}`)
    this.#limits = o.limits.map((l, i) => new Limit(l, i))
    this.#policy = Object.freeze(
      o.limits.map((l) => {
        const d = { id: l.id }
        for (const k of [...MEASURES, 'per', 'timeZone']) if (l[k] !== undefined) d[k] = l[k]
        return Object.freeze(d)
      }),
    )
    for (const l of this.#limits) this.#allRemaining[l.id] = 0
    this.#byId = new Map()
    for (const l of this.#limits) {
      if (this.#byId.has(l.id)) throw invalidArg(`options.limits: two limits have the id ${JSON.stringify(l.id)}`)
      this.#byId.set(l.id, l)
    }
    this.#holdMs = o.holdTtlMs === undefined ? 600_000 : v.integer(o.holdTtlMs, 'options.holdTtlMs', 1, MAX_HOLD_MS)
    this.#defaultMaxTokens = o.defaultMaxTokens === undefined ? 1024 : v.integer(o.defaultMaxTokens, 'options.defaultMaxTokens', 0, MAX_TOKENS)
    this.#prefix = o.prefix === undefined ? 'tollgate:guard:' : v.string(o.prefix, 'options.prefix')
    this.#routing = o.routing === undefined ? null : routingOf(o.routing)
    this.#cache = o.cache === undefined ? null : cacheOf(o.cache)
    if (o.telemetry !== undefined && o.telemetry !== false && o.telemetry !== true) {
      v.knownKeys(v.options(o.telemetry, 'options.telemetry'), ['meterProvider', 'provider'], 'options.telemetry')
      if (o.telemetry.provider !== undefined) v.fn(o.telemetry.provider, 'options.telemetry.provider')
    }
    this.#telemetry = o[kLocalTwin] ? null : telemetryFor(o.telemetry, version)
    this.#tracker = o.tracker === undefined ? null : trackerOf(o.tracker)
    const ns = s[kNative]
    this.#memory = ns.isMemory
    this.#clock = s[kClock] || Date.now
    this.#core = native.guardNew(ns, this.#prefix, this.#holdMs)
    const n = this.#limits.length
    for (let k = 0; k <= n; k++) this.#nums.push(new Float64Array(FIELDS * k))
    this.#out = new Float64Array(4 + 2 * n)
    const same = { limits: o.limits, holdTtlMs: this.#holdMs, defaultMaxTokens: this.#defaultMaxTokens, prefix: this.#prefix }
    this.#fallback = storePolicy('Guard', this.#prefix, { store: s, options: o, memory: this.#memory, clock: s[kClock], stats: this.#stats }, {
      // 'local' decides on a twin in this process; under 'fail-open' and 'local' what the calls
      // admitted meanwhile used is counted in Redis, at the time they were made, once it answers.
      twin: (store, mark) => new Guard({ store, ...same, ...mark }),
      replay: (op) => (op.end ? this.#replayEnd(op) : native.guardRunAsync(this.#core, RECORD, op.names, op.nums, op.at)).then(() => undefined, rethrow),
    }).fallback
  }

  /** The limits' ids, in order. */
  get limits() {
    return this.#limits.map((l) => l.id)
  }

  get prefix() {
    return this.#prefix
  }

  get holdTtlMs() {
    return this.#holdMs
  }

  /**
   * The policy as given, without the scope functions: `{ id, <measure>, per?, timeZone? }` per
   * limit, in order (for headers such as RateLimit-Policy, and dashboards).
   */
  get policy() {
    return this.#policy
  }

  /** @internal */
  get [kCaches]() {
    return this.#cache !== null
  }

  /** The output estimate of a request without `maxTokens`. */
  get defaultMaxTokens() {
    return this.#defaultMaxTokens
  }

  /** What this guard decided, refused (by limit id) and fell back on. */
  stats() {
    return snapshot(this.#stats, this.#fallback, { cached: this.#cachedHits })
  }

  flush() {
    return flush(this.#fallback)
  }

  /**
   * One decision over every limit that applies to `ctx`: admitted on all of them (the routed
   * key in `key`, or a cached response in `cached`) or refused by `limit`, with nothing charged.
   * `options.wait: { maxMs }` waits up to `maxMs` for capacity instead of answering a refusal
   * at once (as `run` does; `options.signal` stops the wait): the refusal comes back only when
   * nothing fitted in time, or when the refusing limit can never fit.
   */
  acquire(ctx, request, options) {
    if (options !== undefined) {
      try {
        const o = v.options(options, 'options')
        v.knownKeys(o, ['wait', 'signal'], 'options')
        const maxMs = waitOf(o.wait)
        if (maxMs > 0) return this.#acquireWaiting(ctx, request, maxMs, o.signal)
      } catch (e) {
        return Promise.reject(fromNative(e))
      }
    }
    const d = this.#acquire(ctx, request)
    return this.#observers.length === 0 ? d : d.then((x) => this.#observed(ctx, request, x))
  }

  /** @internal Calls `fn(decision, scopes, request)` after each decision (tollgate/dashboard). */
  static observe(guard, fn) {
    guard.#observers.push(fn)
  }

  #observed(ctx, request, d) {
    const scopes = {}
    for (const l of this.#limits) scopes[l.id] = (() => { try { return l.scopeFor(ctx) } catch { return null } })()
    for (const fn of this.#observers) fn(d, scopes, request, ctx)
    return d
  }

  #acquire(ctx, request) {
    try {
      const r = this.#request(request)
      if (this.#cache !== null && r.cacheable) {
        return this.#cache.get(r.model, r.messages, r.params).then((hit) => {
          // ResponseCache answers the response or null; SemanticCache `{ hit, response }`.
          const response = hit !== null && typeof hit === 'object' && typeof hit.hit === 'boolean' ? (hit.hit ? hit.response : null) : hit
          return response === null || response === undefined ? this.#decide(ctx, r, request) : this.#cached(ctx, response, r.model)
        }).catch((e) => Promise.reject(fromNative(e)))
      }
      return Promise.resolve(this.#decide(ctx, r, request))
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** What every limit has left for `ctx` (same shape as a decision's `remaining`); counts nothing. */
  peek(ctx) {
    try {
      const m = this.#meters(ctx, null)
      if (m.n === 0) return Promise.resolve({ remaining: {} })
      const shape = (rem) => ({ remaining: this.#remaining(m, rem, 0) })
      if (this.#memory) {
        native.guardRun(this.#core, PEEK, m.names, m.nums, m.now, this.#out)
        return Promise.resolve(shape(this.#out))
      }
      return this.#fallback.run(
        () => native.guardRunAsync(this.#core, PEEK, m.names, m.nums, m.now).then(shape, rethrow),
        () => ({ remaining: Object.fromEntries(m.limits.map((l) => [l.id, l.shown(l.max)])) }),
        (twin) => twin.peek(ctx),
        null,
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /**
   * The provider said the routed key `key` (an id, or the decision's `key`) is exhausted until
   * `untilMs`: it is paused in the routing Quota for `ctx`'s routing scope
   * (`quota.pause`), so no process sharing the store routes to it before then. Resolves
   * false without routing (nothing to pause).
   */
  pause(ctx, key, untilMs) {
    try {
      if (this.#routing === null) return Promise.resolve(false)
      return this.#routing.quota.pause(this.#routing.scope(ctx), key, untilMs)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /**
   * Clears `ctx`'s usage on every limit that applies to it (the meter of each limit's
   * `scope(ctx)`): its counts, window and holds are gone from the store, for every process
   * sharing it, and the next call starts afresh. A decision made before and ended after
   * changes nothing. (express-rate-limit's `resetKey` through `rateLimitStore`.)
   */
  reset(ctx) {
    try {
      const m = this.#meters(ctx, null)
      if (m.n === 0) return Promise.resolve()
      if (this.#memory) {
        native.guardRun(this.#core, RESET, m.names, m.nums, m.now, this.#out)
        this.#freed()
        return Promise.resolve()
      }
      return native.guardRunAsync(this.#core, RESET, m.names, m.nums.slice(), m.now).then(() => {
        this.#freed()
      }, rethrow)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** Ends `decision` with the real usage (as `decision.settle`). */
  settle(decision, usageOrResponse) {
    return this._end(decision, usageOrResponse, false)
  }

  /** Gives back everything `decision` took (as `decision.cancel`). */
  cancel(decision) {
    return this._end(decision, undefined, true)
  }

  /**
   * Acquires, calls `fn({ key, signal, attempt, requestOptions })`, settles with what it
   * returned (or cancels when it threw) and returns it. Refused: rejects with a
   * `ERR_TOLLGATE_LIMITED` error carrying the decision — unless `wait: { maxMs }` lets it wait
   * for capacity (woken when this process frees some, FIFO, or when the refusing limit may
   * have room). `retry` retries the provider's 429s and 5xx with `withRetry`'s options; a
   * cached response is returned without calling `fn`.
   */
  async run(ctx, request, fn, options) {
    v.fn(fn, 'fn')
    const o = v.options(options, 'options')
    v.knownKeys(o, ['wait', 'retry', 'signal'], 'options')
    const maxMs = waitOf(o.wait)
    const d = maxMs > 0 ? await this.#acquireWaiting(ctx, request, maxMs, o.signal) : await this.acquire(ctx, request)
    if (!d.ok) throw limitedError(d)
    if (d.cached !== null) return d.cached
    let result
    try {
      const call = (attempt, requestOptions) => fn({ key: d.key, signal: o.signal, attempt, requestOptions })
      result = o.retry === undefined ? await call(0, { maxRetries: 0 }) : await withRetry(call, { ...o.retry, signal: o.signal })
    } catch (e) {
      await d.cancel().catch(() => {})
      throw e
    }
    await d.settle(result)
    return result
  }

  async #acquireWaiting(ctx, request, maxMs, signal) {
    const deadline = this.#clock() + maxMs
    const me = { wake: null }
    this.#waiters.push(me)
    try {
      for (;;) {
        // Later arrivals wait behind earlier ones (FIFO within the process).
        while (this.#waiters[0] !== me) {
          const left = deadline - this.#clock()
          if (left <= 0) break
          await this.#sleep(me, left, signal)
        }
        const freed = this.#freedCount
        const d = await this.acquire(ctx, request)
        const left = deadline - this.#clock()
        if (d.ok || d.retryAfterMs === null || left <= 0 || (signal && signal.aborted)) return d
        // Capacity came back while the answer was on its way: try again at once.
        if (this.#freedCount !== freed) continue
        // On Redis other processes free capacity too, unseen here: look again every POLL_MS.
        await this.#sleep(me, Math.min(d.retryAfterMs, left, this.#memory ? Infinity : POLL_MS), signal)
      }
    } finally {
      const i = this.#waiters.indexOf(me)
      if (i >= 0) this.#waiters.splice(i, 1)
      if (this.#waiters.length > 0 && this.#waiters[0].wake) this.#waiters[0].wake()
    }
  }

  #sleep(me, ms, signal) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t)
        me.wake = null
        if (signal) signal.removeEventListener('abort', done)
        resolve()
      }
      const t = setTimeout(done, ms)
      me.wake = done
      if (signal) signal.addEventListener('abort', done, { once: true })
    })
  }

  /** Capacity came back in this process: the first waiter tries again now. */
  #freed() {
    this.#freedCount++
    const w = this.#waiters[0]
    if (w && w.wake) w.wake()
  }

  #request(request) {
    const r = v.options(request, 'request')
    v.knownKeys(r, REQUEST_KEYS, 'request')
    const model = v.id(r.model, 'request.model')
    if (r.messages !== undefined && !Array.isArray(r.messages)) throw invalidArg(`request.messages must be an array of messages, got ${v.describe(r.messages)}`)
    let input
    if (r.tokens !== undefined) input = v.integer(r.tokens, 'request.tokens', 0, MAX_TOKENS)
    else input = r.messages === undefined ? 0 : countMessageTokens(r.messages, model, { fallback: 'o200k_base' })
    const output = r.maxTokens === undefined ? this.#defaultMaxTokens : v.integer(r.maxTokens, 'request.maxTokens', 0, MAX_TOKENS)
    if (r.tags !== undefined) v.options(r.tags, 'request.tags')
    return { model, messages: r.messages, params: r.params, tags: r.tags, input, output, cacheable: r.messages !== undefined }
  }

  /** The applicable limits' meters for `ctx`; with `r`, each one's estimate. */
  #meters(ctx, r) {
    const now = this.#clock()
    // The policy's own array while every limit applies (no array per call); never mutated.
    const all = this.#limits
    let limits = all
    let names = ''
    let priced = false
    for (let i = 0; i < all.length; i++) {
      const l = all[i]
      const s = l.scopeFor(ctx)
      if (s === null) {
        if (limits === all) limits = all.slice(0, i)
        continue
      }
      if (limits !== all) limits.push(l)
      if (l.measure === 'usd') priced = true
      names += `${l.id}\u0000${s}\u0000`
    }
    const nums = this.#nums[limits.length]
    let nano = 0
    if (r !== null && priced) nano = costNanoParts(r.model, r.input, r.output)
    for (let i = 0; i < limits.length; i++) {
      const o = i * FIELDS
      limits[i].write(nums, o, now)
      nums[o + 4] = r === null ? 0 : limits[i].amount(r.input, r.output, nano)
      nums[o + 5] = 0
      nums[o + 6] = 0
    }
    return { limits, names, nums, now, n: limits.length, priced }
  }

  #remaining(m, reply, at) {
    // Every limit applies (the usual call): a copy of one object holding every id, so each
    // call's `remaining` has the same shape and its fields are stores, not new properties.
    const out = m.limits === this.#limits ? { ...this.#allRemaining } : {}
    for (let i = 0; i < m.n; i++) out[m.limits[i].id] = m.limits[i].shown(reply[at + i])
    return out
  }

  #decide(ctx, r, request) {
    const m = this.#meters(ctx, r)
    if (m.n === 0) return this.#route(ctx, r, m, null)
    if (this.#memory) {
      native.guardRun(this.#core, ACQUIRE, m.names, m.nums, m.now, this.#out)
      return this.#route(ctx, r, m, this.#out)
    }
    const nums = m.nums.slice()
    return this.#fallback.run(
      () => native.guardRunAsync(this.#core, ACQUIRE, m.names, nums, m.now).then((reply) => this.#route(ctx, r, { ...m, nums }, reply), rethrow),
      () => this.#admitOpen(m, nums, r),
      (twin) => this.#viaLocal(twin, ctx, request, m, nums, r),
      null,
      false,
    )
  }

  /**
   * 'fail-open': admitted without asking; settle counts what the call used in Redis once it
   * answers (routing is skipped: `key` is null).
   */
  #admitOpen(m, nums, r) {
    this.#stats.decisions++
    const remaining = this.#remaining(m, m.limits.map((l) => l.max), 0)
    return this.#seen(new Decision(this, { ok: true, limit: null, retryAfterMs: null, remaining, key: null, cached: null, fallback: 'fail-open' }, m.names, nums, { r, limits: m.limits, priced: m.priced, quota: null, replay: true, twin: null, at: m.now, started: this.#started() }), r, m.limits)
  }

  /** 'local': the twin in this process decides; settle ends the twin's decision and counts in Redis later. */
  #viaLocal(twin, ctx, request, m, nums, r) {
    return twin.acquire(ctx, request).then((d) => {
      this.#stats.decisions++
      const fields = { ok: d.ok, limit: d.limit, retryAfterMs: d.retryAfterMs, remaining: d.remaining, key: null, cached: null, fallback: 'local' }
      if (!d.ok) {
        bump(this.#stats.refused, d.limit)
        return this.#seen(new Decision(this, fields, null, null, null), r, m.limits)
      }
      return this.#seen(new Decision(this, fields, m.names, nums, { r, limits: m.limits, priced: m.priced, quota: null, replay: true, twin: d, at: m.now, started: this.#started() }), r, m.limits)
    })
  }

  /** Records a decision in the telemetry (when on) and returns it. */
  #seen(d, r, limits) {
    if (this.#telemetry !== null) this.#telemetry.decided(d, r.model, limits)
    return d
  }

  /** When an admitted call started, for the operation duration (only with telemetry). */
  #started() {
    return this.#telemetry === null ? 0 : performance.now()
  }

  /** After the meters: routes the call to a key (when routing is on), or refuses. */
  #route(ctx, r, m, reply) {
    const n = m.n
    const ok = reply === null || reply[0] === 1
    const remaining = reply === null ? {} : this.#remaining(m, reply, 4)
    this.#stats.decisions++
    if (!ok) {
      const limit = m.limits[reply[1]].id
      bump(this.#stats.refused, limit)
      return this.#seen(new Decision(this, { ok: false, limit, retryAfterMs: reply[2] < 0 ? null : reply[2], remaining, key: null, cached: null }, null, null, null), r, m.limits)
    }
    // The holds: each meter's number and the shared expiry go back in with the settle. A plain
    // array (numbers on the JS heap): a typed array per decision would be an ArrayBuffer with
    // memory outside it for the collector to track; #endMeters copies it into a scratch buffer.
    let nums = null
    if (n > 0) {
      nums = []
      const src = m.nums
      for (let i = 0; i < n * FIELDS; i++) nums.push(src[i])
      for (let i = 0; i < n; i++) {
        nums[i * FIELDS + 5] = reply[4 + n + i]
        nums[i * FIELDS + 6] = reply[3]
      }
    }
    const routing = this.#routing
    if (routing === null) return this.#seen(new Decision(this, { ok: true, limit: null, retryAfterMs: null, remaining, key: null, cached: null }, m.names, nums, { r, limits: m.limits, priced: m.priced, quota: null, replay: false, twin: null, at: 0, started: this.#started() }), r, m.limits)
    const scope = routing.scope(ctx)
    const keys = routing.keys(ctx)
    return routing.quota.reserve(scope, keys, { tokens: r.input + r.output }).then(
      (q) => {
        if (q.ok) return this.#seen(new Decision(this, { ok: true, limit: null, retryAfterMs: null, remaining, key: q.key, cached: null }, m.names, nums, { r, limits: m.limits, priced: m.priced, quota: q.hold, replay: false, twin: null, at: 0, started: this.#started() }), r, m.limits)
        // The key pool refused: give back what the limits took, all of it.
        return this.#giveBack(m.names, nums).then(() => {
          bump(this.#stats.refused, routing.id)
          return this.#seen(new Decision(this, { ok: false, limit: routing.id, retryAfterMs: q.waitMs === undefined || q.waitMs === null ? null : q.waitMs, remaining, key: null, cached: null, reason: q.reason }, null, null, null), r, m.limits)
        })
      },
      (e) => this.#giveBack(m.names, nums).then(() => Promise.reject(e)),
    )
  }

  #giveBack(names, nums) {
    if (nums === null) return Promise.resolve()
    for (let i = 0; i < nums.length; i += FIELDS) nums[i + 4] = -1
    return this.#endMeters(names, nums).then(() => this.#freed())
  }

  #cached(ctx, hit, model) {
    this.#stats.decisions++
    this.#cachedHits++
    return this.peek(ctx).then(({ remaining }) => this.#seen(new Decision(this, { ok: true, limit: null, retryAfterMs: null, remaining, key: null, cached: hit }, null, null, null), { model: model }, null))
  }

  /** Ends the holds in `nums` (a decision's: a plain array, or a Float64Array when it fell back). */
  #endMeters(names, held) {
    const now = this.#clock()
    if (this.#memory) {
      let nums = held
      if (!(held instanceof Float64Array)) {
        nums = this.#nums[held.length / FIELDS]
        for (let i = 0; i < held.length; i++) nums[i] = held[i]
      }
      native.guardRun(this.#core, END, names, nums, now, this.#out)
      return Promise.resolve()
    }
    const nums = held instanceof Float64Array ? held : Float64Array.from(held)
    // Redis away: the settle (or cancel) of holds Redis keeps is queued and sent once it answers.
    return this.#fallback.run(
      () => native.guardRunAsync(this.#core, END, names, nums, now).then(() => undefined, rethrow),
      () => undefined,
      () => undefined,
      { end: true, names, nums, at: now },
      false,
    )
  }

  /**
   * Replays a settle that could not reach Redis: ends the holds, and where a hold has expired
   * meanwhile (it gave its estimate back), counts the real usage at the time of the settle.
   */
  #replayEnd(op) {
    return native.guardRunAsync(this.#core, END, op.names, op.nums, op.at).then((done) => {
      const parts = op.names.split('\u0000')
      let names = ''
      const nums = []
      for (let i = 0; i < done.length; i++) {
        const o = i * FIELDS
        if (done[i] === 1 || op.nums[o + 4] < 0) continue
        names += `${parts[2 * i]}\u0000${parts[2 * i + 1]}\u0000`
        for (let k = 0; k < FIELDS; k++) nums.push(op.nums[o + k])
      }
      if (nums.length > 0) return native.guardRunAsync(this.#core, RECORD, names, Float64Array.from(nums), op.at)
    })
  }

  /** @internal `decision.settle` / `decision.cancel`. */
  _end(d, usageOrResponse, cancel) {
    try {
      if (!Decision.belongs(d, this)) throw invalidArg(`expected a decision made by this guard's acquire(), got ${v.describe(d)}`)
      if (!d.ok) throw ended(`a refused decision holds nothing to ${cancel ? 'cancel' : 'settle'}`)
      let usage = null
      if (!cancel && d.cached === null) usage = requireUsage(usageOrResponse, 'usageOrResponse')
      const taken = Decision.take(d)
      if (taken === null) throw ended('this decision was already settled or cancelled')
      if (taken.nums === null && taken.release === null) return Promise.resolve(undefined) // fail-open or cached
      const { names, nums, release } = taken
      const r = release.r
      let nano = 0
      if (nums !== null) {
        if (usage !== null && release.priced) {
          try {
            nano = costNanoParts(r.model, usage.inputTokens, usage.outputTokens, usage.cachedInputTokens, usage.cacheWriteTokens)
          } catch (e) {
            Decision.reopen(d, taken)
            throw e
          }
        }
        const now = this.#clock()
        const limits = release.limits
        for (let i = 0; i < limits.length; i++) {
          const l = limits[i]
          const o = i * FIELDS
          // Periods are named at settle time: a hold of an ended period changes nothing.
          if (l.kind === PERIOD) {
            const p = l.current(now)
            nums[o + 2] = p.id
            nums[o + 3] = p.end
          }
          nums[o + 4] = cancel ? -1 : l.measure === 'concurrent' ? 0 : l.amount(usage.inputTokens, usage.outputTokens, nano)
        }
      }
      if (this.#telemetry !== null) this.#telemetry.ended(r.model, release.started, usage, usage !== null && release.priced ? toUsd(nano) : null)
      const after = []
      if (release.quota !== null) {
        const q = this.#routing.quota
        after.push(cancel ? q.rollback(release.quota) : q.commit(release.quota, usage))
      }
      if (!cancel && this.#tracker !== null) after.push(this.#tracker.recordUsage(r.model, usage, r.tags === undefined ? undefined : { tags: r.tags }))
      if (!cancel && this.#cache !== null && r.cacheable && usageOrResponse !== null && typeof usageOrResponse === 'object' && !isUsageOnly(usageOrResponse)) {
        after.push(this.#cache.set(r.model, r.messages, usageOrResponse, r.params))
      }
      let meters
      if (release.replay) {
        // Admitted while Redis was away: the twin's decision ends too, and what the call used is
        // counted in Redis, at the time it was made, once it answers (never the concurrency).
        meters = release.twin === null ? Promise.resolve() : cancel ? release.twin.cancel() : release.twin.settle(usage)
        if (!cancel) this.#fallback.remember({ names, nums, at: release.at })
      } else {
        meters = nums === null ? Promise.resolve() : this.#endMeters(names, nums)
      }
      if (after.length === 0 && this.#memory && !release.replay) {
        // In-process and nothing else to wait for: the meters were ended synchronously.
        this.#freed()
        return meters
      }
      return Promise.all([meters, ...after]).then(() => {
        this.#freed()
        return undefined
      })
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }
}

/** Whether `x` is only a usage (not a response worth caching). */
function isUsageOnly(x) {
  return typeof x.inputTokens === 'number' || typeof x.complete === 'boolean' || typeof x.prompt_tokens === 'number' || typeof x.input_tokens === 'number'
}

/** `options.wait` (`{ maxMs }`) of `run` and `acquire`: how long a refused call may wait, in ms (0: not at all). */
function waitOf(wait) {
  if (wait === undefined) return 0
  const w = v.options(wait, 'options.wait')
  v.knownKeys(w, ['maxMs'], 'options.wait')
  return v.integer(w.maxMs, 'options.wait.maxMs', 0, MAX_HOLD_MS)
}

function routingOf(x) {
  const o = v.options(x, 'options.routing')
  v.knownKeys(o, ['quota', 'keys', 'scope', 'id'], 'options.routing')
  if (o.quota === null || typeof o.quota !== 'object' || typeof o.quota.reserve !== 'function' || typeof o.quota.commit !== 'function') {
    throw invalidArg(`options.routing.quota must be a Quota, got ${v.describe(o.quota)}`)
  }
  let keys
  if (typeof o.keys === 'function') keys = o.keys
  else if (Array.isArray(o.keys)) keys = () => o.keys
  else throw invalidArg(`options.routing.keys must be the API keys (Quota's key list) or a function of the context returning them, got ${v.describe(o.keys)}`)
  let scope
  if (o.scope === undefined) scope = () => 'default'
  else if (typeof o.scope === 'string') scope = () => o.scope
  else scope = v.fn(o.scope, 'options.routing.scope')
  return { quota: o.quota, keys, scope, id: o.id === undefined ? 'keys' : v.id(o.id, 'options.routing.id') }
}

function cacheOf(x) {
  if (x === null || typeof x !== 'object' || typeof x.get !== 'function' || typeof x.set !== 'function') {
    throw invalidArg(`options.cache must be a ResponseCache or SemanticCache, got ${v.describe(x)}`)
  }
  return x
}

function trackerOf(x) {
  if (x === null || typeof x !== 'object' || typeof x.recordUsage !== 'function') throw invalidArg(`options.tracker must be a CostTracker, got ${v.describe(x)}`)
  return x
}

module.exports = { Guard, Decision, periodOf, limitedError, kCaches }
