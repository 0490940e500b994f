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
const { Leases, leaseOptions, inForce } = require('./lease')

const MEASURES = ['requests', 'tokens', 'inputTokens', 'outputTokens', 'usd', 'concurrent']
const LIMIT_KEYS = ['id', 'scope', 'per', 'timeZone', 'lease', ...MEASURES]
const OPTIONS = ['limits', 'routing', 'cache', 'tracker', 'holdTtlMs', 'defaultMaxTokens', 'prefix', 'telemetry', 'lease', ...POLICY_OPTIONS]
/** The limits the guard's own `lease` applies to (sliding windows of these measures). */
const LEASED_BY_GUARD = ['requests', 'tokens', 'inputTokens', 'outputTokens']
/** Default lease time (ms), at most a tenth of the window (as RateLimiter's). */
const LEASE_MS = 1000
/** Most renewals one leased limit of a decision waits for (a burst on a cold scope). */
const RENEWALS = 16
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

/** The key prefix of a leased limit's lease hashes (the id's ':' escaped, as in every key). */
function leasePrefix(prefix, id) {
  return `${prefix}lease:${id.replaceAll(':', '%3A')}:`
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
  /**
   * @param raw the limit as given
   * @param i its index in the policy
   * @param guardLease the guard's `lease` option (applies to request and token windows)
   */
  constructor(raw, i, guardLease) {
    const name = `options.limits[${i}]`
    this.index = i
    /** Lease settings (ms; lib/lease.js) when this limit is leased, else null. */
    this.lease = null
    /** This limit's Leases on a Redis store (set by the guard), else null. */
    this.leases = null
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
      Limit.noLease(raw, name, 'a concurrent limit counts calls in flight')
      this.kind = CONCURRENT
      return
    }
    if (raw.per === undefined) throw invalidArg(`${name}.per is required: a window ('1m', '1h', '1d', ms) or a period ('day' | 'month')`)
    const per = perOf(raw.per, `${name}.per`)
    if (per.windowMs !== undefined) {
      if (raw.timeZone !== undefined) throw invalidArg(`${name}.timeZone applies to calendar periods ('day' | 'month'), not to a sliding window`)
      this.kind = WINDOW
      this.windowMs = per.windowMs
      const own = raw.lease !== undefined
      if (own && raw.lease !== false && this.max === 0) throw outOfRange(`${name}.lease needs a limit of at least 1 (there is nothing to lease)`)
      const x = own ? raw.lease : LEASED_BY_GUARD.includes(this.measure) && this.max > 0 ? guardLease : undefined
      this.lease = leaseOptions(x, this.max, this.windowMs, Math.min(LEASE_MS, Math.max(1, Math.round(this.windowMs / 10))), own ? `${name}.lease` : 'options.lease')
      return
    }
    Limit.noLease(raw, name, `a calendar period ('${per.calendar}') is not a sliding window`)
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

  /** A `lease` on a limit that is not a sliding window: refused (false is accepted). */
  static noLease(raw, name, why) {
    if (raw.lease !== undefined && raw.lease !== false) {
      throw invalidArg(`${name}.lease: ${why}; leases apply to sliding-window limits (per: '1m', '1h', ms…)`)
    }
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
  /** The limits leased on Redis (docs/leases.md), in policy order; empty without `lease`. */
  #leased = []
  #native

  constructor(options) {
    const o = v.options(options, 'options')
    v.knownKeys(o, ['store', ...OPTIONS], 'options')
    const [s] = storeAndOptions(o.store, {}, 'Guard')
    if (!Array.isArray(o.limits)) throw invalidArg(`options.limits must be an array of limits, got ${v.describe(o.limits)}`)
    // The guard's own `lease` is checked once whole (a limit checks it against its own size).
    if (o.lease !== undefined) leaseOptions(o.lease, Number.MAX_SAFE_INTEGER, MAX_WINDOW_MS, LEASE_MS)
    this.#limits = o.limits.map((l, i) => new Limit(l, i, o.lease))
    this.#policy = Object.freeze(
      o.limits.map((l) => {
        const d = { id: l.id }
        // (Not `lease`: how this process decides, not what the limit allows; see `leases`.)
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
    if (!this.#memory) {
      // Leased limits live on their own keys, `<prefix>lease:<limit id>:<scope>`, in
      // lease.lua's layout (a MemoryStore ignores `lease`: every decision is in-process).
      for (const l of this.#limits) {
        if (l.lease === null) continue
        l.leases = new Leases(ns, leasePrefix(this.#prefix, l.id), 'w', l.max, l.windowMs, l.lease, s[kClock] || null, this.#stats)
        this.#leased.push(l)
      }
    }
    this.#native = ns
    const n = this.#limits.length
    for (let k = 0; k <= n; k++) this.#nums.push(new Float64Array(FIELDS * k))
    this.#out = new Float64Array(4 + 2 * n)
    const same = { limits: o.limits, holdTtlMs: this.#holdMs, defaultMaxTokens: this.#defaultMaxTokens, prefix: this.#prefix }
    this.#fallback = storePolicy('Guard', this.#prefix, { store: s, options: o, memory: this.#memory, clock: s[kClock], stats: this.#stats }, {
      // 'local' decides on a twin in this process; under 'fail-open' and 'local' what the calls
      // admitted meanwhile used is counted in Redis, at the time they were made, once it answers.
      twin: (store, mark) => new Guard({ store, ...same, ...mark }),
      // (Leased limits: as uses at the time of the replay, through the lease script.)
      replay: (op) =>
        op.lease ? this.#limits[op.li].leases.charge(op.scope, op.units) : (op.end ? this.#replayEnd(op) : native.guardRunAsync(this.#core, RECORD, op.names, op.nums, op.at)).then(() => undefined, rethrow),
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

  /**
   * What this guard decided, refused (by limit id) and fell back on; with leased limits,
   * `lease` per limit id: scopes holding a lease, units leased and used under them, scopes known.
   */
  stats() {
    const extra = { cached: this.#cachedHits }
    if (this.#leased.length > 0) extra.lease = Object.fromEntries(this.#leased.map((l) => [l.id, l.leases.report()]))
    return snapshot(this.#stats, this.#fallback, extra)
  }

  /**
   * The lease settings in force per leased limit id (`seconds`, `share`, `idleSeconds`); empty
   * without leases or on a MemoryStore.
   */
  get leases() {
    return Object.fromEntries(this.#leased.map((l) => [l.id, inForce(l.lease)]))
  }

  /**
   * Gives back what this guard has leased (unused units are free for other processes at once);
   * a later call takes a new lease. Resolves when Redis has them (a lease that cannot be given
   * back expires on its own). Call it before closing the store. Without leases, resolves at once.
   */
  close() {
    return Promise.all(this.#leased.map((l) => l.leases.close())).then(() => undefined)
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
      if (m.leased > 0) return this.#peekLeased(ctx, m)
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

  /** peek() with leased limits: theirs is what this process's lease has left (no round trip). */
  #peekLeased(ctx, m) {
    const lz = this.#leasedParts(m, [])
    for (const x of lz.leased) {
      const L = x.l.leases
      x.take = { left: L.room(L.state(x.scope), L.now()) }
    }
    const sub = lz.sub
    if (sub.n === 0) return Promise.resolve({ remaining: this.#merged(lz, {}) })
    return this.#fallback.run(
      () => native.guardRunAsync(this.#core, PEEK, sub.names, sub.nums, m.now).then((rem) => ({ remaining: this.#merged(lz, this.#remaining(sub, rem, 0)) }), rethrow),
      () => ({ remaining: Object.fromEntries(m.limits.map((l) => [l.id, l.shown(l.max)])) }),
      (twin) => twin.peek(ctx),
      null,
    )
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
      const calls = []
      if (m.leased > 0) {
        const lz = this.#leasedParts(m, [])
        for (const x of lz.leased) calls.push(x.l.leases.reset(x.scope))
        if (lz.sub.n > 0) calls.push(native.guardRunAsync(this.#core, RESET, lz.sub.names, lz.sub.nums, m.now).then(() => undefined, rethrow))
      } else {
        calls.push(native.guardRunAsync(this.#core, RESET, m.names, m.nums.slice(), m.now).then(() => undefined, rethrow))
      }
      return Promise.all(calls).then(() => {
        this.#freed()
      })
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
    const scopes = this.#leased.length > 0 ? [] : null
    let names = ''
    let priced = false
    let leased = 0
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
      if (scopes !== null) {
        scopes.push(s)
        if (l.leases !== null) leased++
      }
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
    return { limits, names, nums, now, n: limits.length, priced, scopes, leased }
  }

  /** The part of `m` Redis decides (the limits without a lease), with its own copy of the numbers. */
  #unleased(m) {
    const limits = []
    let names = ''
    for (let i = 0; i < m.n; i++) if (m.limits[i].leases === null) limits.push(i)
    const nums = new Float64Array(limits.length * FIELDS)
    for (let k = 0; k < limits.length; k++) {
      const i = limits[k]
      names += `${m.limits[i].id}\u0000${m.scopes[i]}\u0000`
      nums.set(m.nums.subarray(i * FIELDS, (i + 1) * FIELDS), k * FIELDS)
    }
    return { limits: limits.map((i) => m.limits[i]), names, nums, now: m.now, n: limits.length, priced: m.priced }
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
    if (m.leased > 0) return this.#decideLeased(ctx, r, request, { ...m, nums: m.nums.slice() })
    const nums = m.nums.slice()
    return this.#fallback.run(
      () => native.guardRunAsync(this.#core, ACQUIRE, m.names, nums, m.now).then((reply) => this.#route(ctx, r, { ...m, nums }, reply), rethrow),
      () => this.#admitOpen(m, nums, r),
      (twin) => this.#viaLocal(twin, ctx, request, m, nums, r),
      null,
      false,
    )
  }

  // Leased limits (docs/leases.md): each leased limit of the call is taken from this
  // process's lease on its scope, in-process; the rest (limits without a lease, the key pool)
  // is decided as without leases, in one round trip. All or nothing: when anything refuses,
  // what the leases gave is given back to them here. A decision whose limits are all leased
  // costs no round trip while the leases have room.
  #decideLeased(ctx, r, request, m) {
    const taken = []
    for (let i = 0; i < m.n; i++) {
      if (m.limits[i].leases === null) continue
      const got = this.#fromLease(m.limits[i], m.scopes[i], m.nums[i * FIELDS + 4])
      if (got === null) return this.#decideRenewing(ctx, r, request, m, taken, i)
      if (got.refused) return this.#leaseRefused(m, r, taken, i, got.wait)
      taken.push(got)
    }
    return this.#afterLeases(ctx, r, request, m, taken)
  }

  async #decideRenewing(ctx, r, request, m, taken, from) {
    for (let i = from; i < m.n; i++) {
      const l = m.limits[i]
      if (l.leases === null) continue
      const amount = m.nums[i * FIELDS + 4]
      let got = this.#fromLease(l, m.scopes[i], amount)
      if (got === null) {
        // While Redis is known to be away, renewals go straight to the policy.
        const outage = this.#fallback.skipping()
        try {
          if (outage !== null) throw outage
          got = await this.#renewLease(l, m.scopes[i], amount)
        } catch (e) {
          // Redis is away and this lease has no room: the guard's policy decides the whole call.
          this.#untake(taken)
          return this.#fallback.handle(
            fromNative(e),
            () => this.#admitOpen(m, null, r, this.#leasedParts(m, [])),
            (twin) => this.#viaLocal(twin, ctx, request, m, null, r, this.#leasedParts(m, [])),
            null,
            outage !== null,
            false,
          )
        }
      }
      if (got.refused) return this.#leaseRefused(m, r, taken, i, got.wait)
      taken.push(got)
    }
    return this.#afterLeases(ctx, r, request, m, taken)
  }

  /**
   * Takes `amount` from the lease of limit `l` on `scope` when it has room: the take (a
   * `Leases` state, lease number and start, time, units, room left), `{ refused, wait }` when
   * refused here, or null when a renewal must ask Redis.
   */
  #fromLease(l, scope, amount) {
    const L = l.leases
    // More than one lease may hold never fits (the limit's size, unless `share` is smaller).
    if (amount > l.lease.share) return { refused: true, wait: null }
    const s = L.state(scope)
    if (s.pending !== null) return null
    const t = L.now()
    const room = L.room(s, t)
    if (amount === 0 || room >= amount) {
      if (amount > 0) L.use(s, amount, t)
      return { l, scope, s, n: s.n, start: s.start, at: t, units: amount, left: room - amount, back: false }
    }
    if (t < s.blocked) {
      L.demand(s, amount) // asked for, not used: the next ask sizes by it
      this.#stats.blockedLocally++
      return { refused: true, wait: Math.max(1, s.blocked - t) }
    }
    return null
  }

  /** One round trip gives the lease of `l` on `scope` back and takes the next (as RateLimiter). */
  async #renewLease(l, scope, amount) {
    const L = l.leases
    let s = await L.renew(scope, amount)
    let t = L.now()
    // What came may have been used up meanwhile by callers ahead: ask again (each ask at least
    // doubles a lease used up early) until the server refuses, or grants less than the call
    // needs (it had no more to give this process now).
    for (let k = 0; k < RENEWALS && L.room(s, t) < amount && t >= s.blocked && s.units >= amount; k++) {
      s = await L.renew(scope, amount)
      t = L.now()
    }
    this.#fallback.ok()
    const room = L.room(s, t)
    if (room >= amount) {
      L.use(s, amount, t)
      return { l, scope, s, n: s.n, start: s.start, at: t, units: amount, left: room - amount, back: false }
    }
    L.demand(s, amount)
    // Refused by the server: until a unit frees. Granted too little: look again in a quarter
    // of a lease time (others give back, or the lease grows with this process's demand).
    return { refused: true, wait: Math.max(1, s.blocked > t ? s.blocked - t : Math.round(l.lease.leaseMs / 4)) }
  }

  /** Gives back to their leases what the takes took (each once; a lease given back meanwhile keeps it). */
  #untake(taken) {
    for (const x of taken) {
      if (x === null || x.back || x.units === 0) continue
      x.back = true
      x.l.leases.unuse(x.s, x.n, x.start, x.units, x.at)
    }
  }

  /** A leased limit refused: nothing asked of Redis, what other leases gave is given back. */
  #leaseRefused(m, r, taken, i, wait) {
    this.#untake(taken)
    this.#stats.decisions++
    const limit = m.limits[i].id
    bump(this.#stats.refused, limit)
    // Only the leased limits are known here: what their leases have left.
    const remaining = {}
    for (let j = 0; j < m.n; j++) {
      const l = m.limits[j]
      if (l.leases === null) continue
      const L = l.leases
      remaining[l.id] = l.shown(Math.max(0, L.room(L.state(m.scopes[j]), L.now())))
    }
    return this.#seen(new Decision(this, { ok: false, limit, retryAfterMs: wait, remaining, key: null, cached: null }, null, null, null), r, m.limits)
  }

  /** The leased limits of `m`, each with what was taken from its lease (none: decided without). */
  #leasedParts(m, taken) {
    const leased = []
    let k = 0
    for (let i = 0; i < m.n; i++) {
      const l = m.limits[i]
      if (l.leases === null) continue
      leased.push({ l, scope: m.scopes[i], take: taken.length > 0 ? taken[k++] : null })
    }
    const sub = this.#unleased(m)
    return { sub, leased, all: m }
  }

  /** The leases gave: the rest of the decision goes to Redis (or nowhere, when all is leased). */
  #afterLeases(ctx, r, request, m, taken) {
    const lz = this.#leasedParts(m, taken)
    const sub = lz.sub
    if (sub.n === 0) return this.#route(ctx, r, sub, null, lz)
    return this.#fallback
      .run(
        () => native.guardRunAsync(this.#core, ACQUIRE, sub.names, sub.nums, m.now).then((reply) => this.#route(ctx, r, sub, reply, lz), rethrow),
        () => this.#admitOpen(m, null, r, lz),
        (twin) => this.#viaLocal(twin, ctx, request, m, null, r, lz),
        null,
        false,
      )
      .then(undefined, (e) => {
        this.#untake(taken)
        throw e
      })
  }

  /**
   * 'fail-open': admitted without asking; settle counts what the call used in Redis once it
   * answers (routing is skipped: `key` is null). With leased limits (`lz`), only the rest is
   * admitted so: what the leases gave stays theirs.
   */
  #admitOpen(m, nums, r, lz = null) {
    this.#stats.decisions++
    const remaining = this.#remaining(m, m.limits.map((l) => l.max), 0)
    const [names, held, limits] = lz === null ? [m.names, nums, m.limits] : [lz.sub.names, lz.sub.n > 0 ? lz.sub.nums : null, lz.sub.limits]
    return this.#seen(new Decision(this, { ok: true, limit: null, retryAfterMs: null, remaining, key: null, cached: null, fallback: 'fail-open' }, names, held, { r, limits, priced: m.priced, quota: null, replay: true, twin: null, at: m.now, started: this.#started(), leased: lz === null ? null : lz.leased }), r, m.limits)
  }

  /** 'local': the twin in this process decides; settle ends the twin's decision and counts in Redis later. */
  #viaLocal(twin, ctx, request, m, nums, r, lz = null) {
    return twin.acquire(ctx, request).then((d) => {
      this.#stats.decisions++
      const fields = { ok: d.ok, limit: d.limit, retryAfterMs: d.retryAfterMs, remaining: d.remaining, key: null, cached: null, fallback: 'local' }
      if (!d.ok) {
        if (lz !== null) this.#untake(lz.leased.filter((x) => x.take !== null).map((x) => x.take))
        bump(this.#stats.refused, d.limit)
        return this.#seen(new Decision(this, fields, null, null, null), r, m.limits)
      }
      const [names, held, limits] = lz === null ? [m.names, nums, m.limits] : [lz.sub.names, lz.sub.n > 0 ? lz.sub.nums : null, lz.sub.limits]
      return this.#seen(new Decision(this, fields, names, held, { r, limits, priced: m.priced, quota: null, replay: true, twin: d, at: m.now, started: this.#started(), leased: lz === null ? null : lz.leased }), r, m.limits)
    })
  }

  /** Records a decision in the telemetry (when on) and returns it. */
  #seen(d, r, limits) {
    if (this.#telemetry !== null) {
      // A leased limit's `remaining` is its lease's: no utilization of the limit to record.
      const measured = limits !== null && this.#leased.length > 0 ? limits.filter((l) => l.leases === null) : limits
      this.#telemetry.decided(d, r.model, measured)
    }
    return d
  }

  /** When an admitted call started, for the operation duration (only with telemetry). */
  #started() {
    return this.#telemetry === null ? 0 : performance.now()
  }

  /**
   * After the meters: routes the call to a key (when routing is on), or refuses. With leased
   * limits (`lz`), `m` is the part Redis decided and `lz.leased` what the leases gave.
   */
  #route(ctx, r, m, reply, lz = null) {
    const n = m.n
    const ok = reply === null || reply[0] === 1
    let remaining = reply === null ? {} : this.#remaining(m, reply, 4)
    const leased = lz === null ? null : lz.leased
    const seenLimits = lz === null ? m.limits : lz.all.limits
    if (lz !== null) remaining = this.#merged(lz, remaining)
    this.#stats.decisions++
    if (!ok) {
      if (leased !== null) this.#untake(leased.map((x) => x.take))
      const limit = m.limits[reply[1]].id
      bump(this.#stats.refused, limit)
      return this.#seen(new Decision(this, { ok: false, limit, retryAfterMs: reply[2] < 0 ? null : reply[2], remaining, key: null, cached: null }, null, null, null), r, seenLimits)
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
    if (routing === null) return this.#seen(new Decision(this, { ok: true, limit: null, retryAfterMs: null, remaining, key: null, cached: null }, m.names, nums, { r, limits: m.limits, priced: m.priced, quota: null, replay: false, twin: null, at: 0, started: this.#started(), leased }), r, seenLimits)
    const scope = routing.scope(ctx)
    const keys = routing.keys(ctx)
    const untake = () => {
      if (leased !== null) this.#untake(leased.map((x) => x.take))
    }
    return routing.quota.reserve(scope, keys, { tokens: r.input + r.output }).then(
      (q) => {
        if (q.ok) return this.#seen(new Decision(this, { ok: true, limit: null, retryAfterMs: null, remaining, key: q.key, cached: null }, m.names, nums, { r, limits: m.limits, priced: m.priced, quota: q.hold, replay: false, twin: null, at: 0, started: this.#started(), leased }), r, seenLimits)
        // The key pool refused: give back what the limits took, all of it.
        untake()
        return this.#giveBack(m.names, nums).then(() => {
          bump(this.#stats.refused, routing.id)
          return this.#seen(new Decision(this, { ok: false, limit: routing.id, retryAfterMs: q.waitMs === undefined || q.waitMs === null ? null : q.waitMs, remaining, key: null, cached: null, reason: q.reason }, null, null, null), r, seenLimits)
        })
      },
      (e) => {
        untake()
        return this.#giveBack(m.names, nums).then(() => Promise.reject(e))
      },
    )
  }

  /** A decision's `remaining` in policy order: leased limits from their leases, the rest from Redis. */
  #merged(lz, fromRedis) {
    const out = {}
    const all = lz.all
    let k = 0
    for (let i = 0; i < all.n; i++) {
      const l = all.limits[i]
      if (l.leases === null) {
        if (fromRedis[l.id] !== undefined) out[l.id] = fromRedis[l.id]
      } else {
        const x = lz.leased[k++]
        out[l.id] = l.shown(x.take === null ? l.max : Math.max(0, x.take.left))
      }
    }
    return out
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

  /**
   * Ends the leased part of a decision, in-process as a TokenBudget lease does: below the
   * estimate, the difference goes back to the lease it was taken from (while this process
   * still holds it); above, the extra is used under the lease, or sent at once when the lease
   * cannot cover it. A leased limit of a call admitted by the failure policy counts what the
   * call used once Redis answers. Round trips (if any) are pushed to `after`.
   */
  #endLeased(leased, usage, nano, cancel, after) {
    for (const x of leased) {
      const l = x.l
      const actual = cancel ? 0 : l.amount(usage.inputTokens, usage.outputTokens, nano)
      // A take given back already (the call was then admitted by the failure policy) counts as
      // not taken: what the call used is counted once Redis answers.
      const take = x.take !== null && !x.take.back ? x.take : null
      if (take === null) {
        if (actual > 0) this.#fallback.remember({ lease: true, li: l.index, scope: x.scope, units: actual })
        continue
      }
      const extra = actual - take.units
      if (extra < 0) l.leases.unuse(take.s, take.n, take.start, -extra, take.at)
      else if (extra > 0) {
        const op = { lease: true, li: l.index, scope: x.scope, units: extra }
        after.push(l.leases.charge(x.scope, extra).catch((e) => this.#fallback.handle(fromNative(e), () => undefined, () => undefined, op, false, false)))
      }
    }
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
      const leased = release.leased === undefined ? null : release.leased
      if (nums !== null || leased !== null) {
        if (usage !== null && release.priced) {
          try {
            nano = costNanoParts(r.model, usage.inputTokens, usage.outputTokens, usage.cachedInputTokens, usage.cacheWriteTokens)
          } catch (e) {
            Decision.reopen(d, taken)
            throw e
          }
        }
      }
      if (nums !== null) {
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
      if (leased !== null) this.#endLeased(leased, usage, nano, cancel, after)
      if (!cancel && this.#tracker !== null) after.push(this.#tracker.recordUsage(r.model, usage, r.tags === undefined ? undefined : { tags: r.tags }))
      if (!cancel && this.#cache !== null && r.cacheable && usageOrResponse !== null && typeof usageOrResponse === 'object' && !isUsageOnly(usageOrResponse)) {
        after.push(this.#cache.set(r.model, r.messages, usageOrResponse, r.params))
      }
      let meters
      if (release.replay) {
        // Admitted while Redis was away: the twin's decision ends too, and what the call used is
        // counted in Redis, at the time it was made, once it answers (never the concurrency).
        meters = release.twin === null ? Promise.resolve() : cancel ? release.twin.cancel() : release.twin.settle(usage)
        if (!cancel && nums !== null) this.#fallback.remember({ names, nums, at: release.at })
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
