'use strict'
// Quota: rate-budget's multi-key quota engine. For each request, pick the API key of a scope
// that has RPM, TPM and RPD headroom, reserve on it, then commit the real token count or roll
// back. The algorithm is engine/quota.rs; numbers match rate-budget, including how it
// sanitises bad numbers. This file gathers what JavaScript decides (the clock, the day bucket,
// the estimate, the hold id, localeCompare order) and shapes results exactly like rate-budget.

const native = require('./native')
const { fromNative, invalidArg, outOfRange } = require('./errors')
const { MemoryStore, RedisStore, kNative, kClock, resolveStore, isRedisClient, checkSlotPrefix } = require('./stores')
const { newStats, bump, snapshot, flush, POLICY_OPTIONS } = require('./policy')
const { storePolicy } = require('./setup')
const v = require('./validate')
const { totalTokens, StreamUsage } = require('./usage')

/** The engine's defaults (src/engine/quota), the one place they are set. */
const [WINDOW_MS, BUFFER_MS, THRESHOLD_PCT] = native.quotaDefaults()
const { QUOTA_PREFIX: DEFAULT_PREFIX } = require('./stores')
const DEFAULT_HOLD_TTL_MS = 10 * 60_000
/** Every option a Quota takes: a misspelt one is refused rather than left at its default. */
const QUOTA_OPTIONS = ['store', 'estimate', 'now', 'id', 'windowMs', 'bufferMs', 'thresholdPct', 'dayKey', 'resetAt', 'holdTtlMs', 'strictTpm', 'monotonic', 'rpmWindow', 'prefix', ...POLICY_OPTIONS]
/** Scopes whose last answer a 'local' Quota keeps to seed its twin (the oldest go first). */
const SEEN_SCOPES = 10_000

/** A number, or NaN for anything else (which the engine sanitises to the fallback). */
const n = (x) => (typeof x === 'number' ? x : NaN)

/** rate-budget's `nonNeg`: floor, at least 0; non-finite → `fb`. */
function nonNeg(x, fb = 0) {
  return Math.max(0, Math.floor(Number.isFinite(x) ? x : fb))
}

/** `ceil(windowMs / rpm) + bufferMs` with rate-budget's sanitising (rpm floored, at least 1). */
function cooldownMs(rpm, bufferMs = BUFFER_MS, windowMs = WINDOW_MS) {
  return native.quotaCooldownMs(n(rpm), n(bufferMs), n(windowMs))
}

/** `ceil(rpd * (thresholdPct / 100))` in floating point, as rate-budget computes it. */
function dailyCap(rpd, thresholdPct = THRESHOLD_PCT) {
  return native.quotaDailyCap(n(rpd), n(thresholdPct))
}

/** Milliseconds until `tokens` more fit under `limit` in the sliding window, or null if never. */
function tokenWaitMs({ used, tokens, limit, hits = [], now, windowMs, bufferMs } = {}) {
  const list = Array.isArray(hits) ? hits : []
  return native.quotaTokenWaitMs(
    n(used),
    n(tokens),
    n(limit),
    list.map((h) => n(h && h.at)),
    list.map((h) => n(h && h.tokens)),
    n(now),
    n(windowMs ?? WINDOW_MS),
    n(bufferMs ?? BUFFER_MS),
  )
}

function defaultEstimate(req) {
  if (typeof req === 'number') return req
  if (req !== null && typeof req === 'object' && 'tokens' in req) return typeof req.tokens === 'number' ? req.tokens : 1
  return 1
}

// rate-budget's id shape (time-sequence-random, base 36), with the random part drawn once per
// process: with the time and a per-process sequence it is as unique, and an id costs a fifth.
let seq = 0
const PROCESS_TAG = Math.random().toString(36).slice(2, 8).padEnd(6, '0')
let idMs = -1
let idTime = ''
function defaultId() {
  seq += 1
  const ms = Date.now()
  if (ms !== idMs) {
    idMs = ms
    idTime = ms.toString(36)
  }
  return `${idTime}-${seq.toString(36)}-${PROCESS_TAG}`
}

const DAY_MS = 86_400_000
// The default day bucket is a UTC date; remember the current one so most calls skip `Date`.
let today = { start: Number.NaN, end: Number.NaN, key: '' }

/** UTC `YYYY-MM-DD` of `now` (rate-budget's default `dayKey`). */
function defaultDayKey(now) {
  if (now >= today.start && now < today.end) return today.key
  const key = new Date(now).toISOString().slice(0, 10)
  const start = Math.floor(now / DAY_MS) * DAY_MS
  today = { start, end: start + DAY_MS, key }
  return key
}

/** The next UTC midnight after `now` (rate-budget's default `resetAt`). */
function defaultResetAt(now) {
  if (now >= today.start && now < today.end) return today.end
  const d = new Date(now)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
}

const numOrNull = (x) => (typeof x === 'number' && !Number.isNaN(x) ? x : null)

/** The keys of a call as a list, each checked to be an object. */
function keyList(keyOrKeys) {
  const keys = Array.isArray(keyOrKeys) ? keyOrKeys : [keyOrKeys]
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]
    if (k === null || typeof k !== 'object') {
      throw invalidArg(`keys[${i}] must be a key object { id, rpm, tpm, rpd }, got ${v.describe(k)}`)
    }
    // Two ids that differ only in a lone surrogate would name one key: refused, on every store.
    if (typeof k.id === 'string') v.wellFormed(k.id, `keys[${i}].id`)
  }
  return keys
}

const rankCache = new Map()
/** Each name's position in localeCompare order (the last tie-break); cached per list of names. */
function ranksOf(names) {
  if (names.length === 1) return [0]
  // Each name behind its length: no two lists share an id (a plain join would let
  // ['a\0b', 'c'] and ['a', 'b\0c'] meet, and take each other's order).
  let id = ''
  for (const n of names) id += `${n.length}\u0000${n}`
  let ranks = rankCache.get(id)
  if (ranks === undefined) {
    const order = [...new Set(names)].sort((a, b) => a.localeCompare(b))
    const rank = new Map(order.map((name, i) => [name, i]))
    ranks = names.map((n) => rank.get(n))
    if (rankCache.size >= 1024) rankCache.clear()
    rankCache.set(id, ranks)
  }
  return ranks
}

const tpdOf = (k, i) => (k.tpd === undefined || k.tpd === null ? null : v.integer(k.tpd, `keys[${i}].tpd`, 1, Number.MAX_SAFE_INTEGER))

/** The keys of one call, packed for the memory path: names, and 7 numbers a key (in `buffer`, reused when it fits). */
function packKeys(keyOrKeys, buffer) {
  const keys = keyList(keyOrKeys)
  const names = keys.map((k) => String(k.id))
  const ranks = ranksOf(names)
  const nums = buffer.length === keys.length * 7 ? buffer : new Float64Array(keys.length * 7)
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]
    const o = i * 7
    nums[o] = n(k.rpm)
    nums[o + 1] = n(k.tpm)
    nums[o + 2] = n(k.rpd)
    nums[o + 3] = tpdOf(k, i) ?? NaN
    nums[o + 4] = n(k.priority)
    nums[o + 5] = (k.enabled !== false ? 1 : 0) | (typeof k.id === 'string' ? 2 : 0)
    nums[o + 6] = ranks[i]
  }
  return [keys, names, nums]
}

const REASONS = [undefined, 'rpm', 'tpm', 'rpd', 'tpd', 'off', 'no_key', 'paused']
const nullIfNaN = (x) => (Number.isNaN(x) ? null : x)

/**
 * A packed decision in rate-budget's shapes: the numbers `quotaDecide` writes (memory) or
 * `quotaDecideAsync` resolves to (Redis), laid out at binding/quota `quota_decide`.
 * `prevId()` is the hold's previous hold id, asked only when the numbers say there is one.
 */
function unpackDecision(p, op, keys, names, tokens, hold, prevId) {
  const checks = new Array(p[4])
  let i = 5
  for (let c = 0; c < checks.length; c++, i += 12) {
    checks[c] = {
      key: names[c],
      ok: p[i] === 1,
      reason: REASONS[p[i + 1]],
      waitMs: nullIfNaN(p[i + 2]),
      priority: p[i + 3],
      rpmMs: p[i + 4],
      tpmMs: nullIfNaN(p[i + 5]),
      tokenUsed: p[i + 6],
      tokenPct: p[i + 7],
      dailyUsed: p[i + 8],
      dailyCap: p[i + 9],
      dailyLeft: p[i + 10],
      dailyPct: p[i + 11],
    }
  }
  if (p[0] !== 1) return { ok: false, reason: REASONS[p[2]], tokens, waitMs: nullIfNaN(p[3]), checks }
  const result = { ok: true, key: keys[p[1]], tokens, waitMs: 0, checks }
  if (op === 'reserve') {
    const prevAt = p[i + 1]
    result.hold = {
      id: hold.id,
      scope: hold.scope,
      key: names[p[1]],
      tokens,
      at: p[i],
      day: hold.day,
      prevAt: Number.isNaN(prevAt) ? undefined : prevAt,
      prevId: p[i + 2] === 1 ? prevId() : undefined,
    }
  }
  return result
}

/** The keys of one call as the engine takes them as JSON (a `mutate` store), from their packed numbers. */
function keyInputs(names, nums) {
  return names.map((name, i) => {
    const o = i * 7
    return {
      id: nums[o + 5] & 2 ? name : null,
      name,
      rpm: nullIfNaN(nums[o]),
      tpm: nullIfNaN(nums[o + 1]),
      rpd: nullIfNaN(nums[o + 2]),
      tpd: nullIfNaN(nums[o + 3]),
      priority: nullIfNaN(nums[o + 4]),
      enabled: (nums[o + 5] & 1) === 1,
      rank: nums[o + 6],
    }
  })
}

/** No buffer: packKeys makes a new one (a Redis call reads its keys after it returns). */
const FRESH = new Float64Array(0)
/** quotaDecide's and quotaDecideAsync's op codes. */
const DECIDE = { check: 0, reserve: 1, force: 2 }

function checkOf(c) {
  return {
    key: c.key,
    ok: c.ok,
    reason: c.reason ?? undefined,
    waitMs: c.waitMs,
    priority: c.priority,
    rpmMs: c.rpmMs,
    tpmMs: c.tpmMs,
    tokenUsed: c.tokenUsed,
    tokenPct: c.tokenPct,
    dailyUsed: c.dailyUsed,
    dailyCap: c.dailyCap,
    dailyLeft: c.dailyLeft,
    dailyPct: c.dailyPct,
  }
}

function holdOf(h) {
  return { id: h.id, scope: h.scope, key: h.key, tokens: h.tokens, at: h.at, day: h.day, prevAt: h.prevAt, prevId: h.prevId }
}

class Quota {
  #store
  #kind
  #core
  /** Reply buffer of the memory path, reused call after call. */
  #out = new Float64Array(64)
  /** The keys' numbers of the memory path (two keys: the usual call), reused likewise. */
  #nums = new Float64Array(14)
  /** The previous hold id of the memory path's last reservation (beside its numbers). */
  #prevId = () => native.quotaLastPrevId(this.#core)
  #estimate
  #now
  #id
  #dayKey
  #resetAt
  #options
  #stats = newStats()
  #fallback = null
  /** Under 'local' on Redis: per scope, what Redis last answered (`#saw`), to seed the twin. */
  #seen = null

  /**
   * `new Quota(options)` as in rate-budget, or the store first as every other tollgate class
   * takes it: `new Quota(store, options)`.
   */
  constructor(storeOrOptions, maybeOptions) {
    let options = storeOrOptions
    if (isStoreArgument(storeOrOptions)) {
      const rest = v.options(maybeOptions, 'options')
      if (rest.store !== undefined) throw invalidArg('a store was passed first and as options.store: pass it once')
      options = { ...rest, store: storeOrOptions }
    } else if (maybeOptions !== undefined) {
      throw invalidArg(`new Quota(store, options) takes a store first (a MemoryStore, RedisStore, Redis URL or client, or { mutate }); got ${v.describe(storeOrOptions)}`)
    }
    const o = v.knownKeys(v.options(options, 'options'), QUOTA_OPTIONS, 'options')
    let store = o.store ?? new MemoryStore()
    if (typeof store === 'string' || isRedisClient(store)) store = resolveStore(store, 'Quota')
    if (store instanceof MemoryStore || store instanceof RedisStore) {
      this.#kind = store instanceof MemoryStore ? 'memory' : 'redis'
    } else if (store !== null && typeof store === 'object' && typeof store.mutate === 'function') {
      this.#kind = 'mutate'
    } else {
      throw invalidArg(
        `options.store must be a MemoryStore, a RedisStore, a Redis URL or client, or an object with mutate(scope, fn); got ${v.describe(store)}`,
      )
    }
    this.#store = store
    const prefix = o.prefix === undefined ? DEFAULT_PREFIX : v.string(o.prefix, 'options.prefix')
    // #core is set below, once the options are known.
    this.#estimate = o.estimate === undefined || o.estimate === null ? defaultEstimate : v.fn(o.estimate, 'options.estimate')
    this.#now = o.now === undefined || o.now === null ? Date.now : v.fn(o.now, 'options.now')
    this.#id = o.id === undefined || o.id === null ? defaultId : v.fn(o.id, 'options.id')
    this.#dayKey = o.dayKey === undefined || o.dayKey === null ? defaultDayKey : v.fn(o.dayKey, 'options.dayKey')
    this.#resetAt = o.resetAt === undefined || o.resetAt === null ? defaultResetAt : v.fn(o.resetAt, 'options.resetAt')
    let holdTtlMs = DEFAULT_HOLD_TTL_MS
    if (o.holdTtlMs !== undefined) {
      holdTtlMs = o.holdTtlMs === null || o.holdTtlMs === Infinity ? null : v.integer(o.holdTtlMs, 'options.holdTtlMs', 1, Number.MAX_SAFE_INTEGER)
    }
    this.#options = {
      windowMs: numOrNull(o.windowMs),
      bufferMs: numOrNull(o.bufferMs),
      thresholdPct: numOrNull(o.thresholdPct),
      strictTpm: o.strictTpm === undefined ? true : o.strictTpm !== false,
      monotonic: o.monotonic === undefined ? true : o.monotonic !== false,
      holdTtlMs,
      rpmWindow: o.rpmWindow === undefined ? false : o.rpmWindow === true || (o.rpmWindow === false ? false : badFlag('options.rpmWindow', o.rpmWindow)),
    }
    const p = this.#options
    const packed = [p.windowMs ?? NaN, p.bufferMs ?? NaN, p.thresholdPct ?? NaN, p.strictTpm ? 1 : 0, p.monotonic ? 1 : 0, p.holdTtlMs ?? NaN, p.rpmWindow ? 1 : 0]
    this.#core = this.#kind === 'mutate' ? null : native.quotaNew(store[kNative], prefix, packed)
    // All keys of a scope share its hash tag; a prefix with an empty {} tag would spread them.
    if (this.#kind === 'redis') checkSlotPrefix(prefix, [':k', ':h', ':x'].map((k) => `${prefix}{qscope}${k}`), 'options.prefix')
    const redis = this.#kind === 'redis'
    const { fallback, policy } = storePolicy('Quota', prefix, { store: redis ? store : {}, options: o, memory: !redis, clock: null, stats: this.#stats }, {
      // The in-process twin: the same engine on a private in-memory scope map (a `mutate` store).
      twin: (_store, mark) => {
        const scopes = new Map()
        const mutate = (scope, fn) => {
          const state = scopes.get(scope) ?? this.#seedState(scope) ?? {}
          const out = fn(state)
          scopes.set(scope, state)
          return out
        }
        return new Quota({ ...o, store: { mutate }, ...mark })
      },
      // A reservation granted meanwhile is forced onto its key in Redis (never checked again, never
      // lost); commits and rollbacks of such holds follow it, in order.
      replay: (op) => this.#redis(op.request),
    })
    this.#fallback = fallback
    if (redis && policy === 'local') this.#seen = new Map()
  }

  /** Decisions made, refusals by reason, and what the store failure policy did. */
  stats() {
    return snapshot(this.#stats, this.#fallback)
  }

  /** Pushes reservations, commits and rollbacks made during a Redis outage to Redis now. */
  flush() {
    return flush(this.#fallback)
  }

  /** Picks a key without reserving. Like rate-budget, it still tidies the scope's state. */
  check(scope, keyOrKeys, req) {
    return settle(() => this.#decide('check', scope, keyOrKeys, req))
  }

  /** Picks a key and reserves one request and the estimated tokens on it. */
  reserve(scope, keyOrKeys, req) {
    return settle(() => this.#decide('reserve', scope, keyOrKeys, req))
  }

  /**
   * Replaces a hold's estimate by the real tokens and releases it. `usage` is rate-budget's
   * `{ tokens }` (its contract kept: `tokens` undefined, or no usage at all, keeps the
   * estimate), a number of tokens, or what the call returned — a provider response, a `Usage`,
   * a finished `streamUsage()` — read as input (cached included) + output tokens.
   */
  commit(hold, usage = {}) {
    return settle(() => {
      this.#checkHold(hold)
      const rateBudget = usage !== null && typeof usage === 'object' && !(usage instanceof StreamUsage) && ('tokens' in usage || Object.keys(usage).length === 0)
      const commitTokens = rateBudget ? (usage.tokens === undefined ? null : nonNeg(usage.tokens, hold.tokens)) : totalTokens(usage, 'usage')
      if (this.#kind === 'memory') return this.#settle(0, hold, commitTokens ?? NaN)
      const request = { op: 'commit', scope: hold.scope, holdId: hold.id, holdKey: hold.key, commitTokens, ...this.#until() }
      if (hold.local === true && this.#fallback) return this.#settleLocal(hold, request, (l) => l.commit({ ...hold, local: undefined }, usage))
      return this.#kind === 'redis' ? this.#settleRedis(request) : this.#run(hold.scope, request)
    })
  }

  /** Gives back what a hold took: its tokens, its request of the day, its RPM spacing. */
  rollback(hold) {
    return settle(() => {
      this.#checkHold(hold)
      if (this.#kind === 'memory') return this.#settle(1, hold, NaN)
      const request = { op: 'rollback', scope: hold.scope, holdId: hold.id, holdKey: hold.key, ...this.#until() }
      if (hold.local === true && this.#fallback) return this.#settleLocal(hold, request, (l) => l.rollback({ ...hold, local: undefined }))
      return this.#kind === 'redis' ? this.#settleRedis(request) : this.#run(hold.scope, request)
    })
  }

  /**
   * Marks `key` (a key object or its id) of `scope` exhausted until `untilMs` (epoch ms, the
   * quota's clock): the provider said so, through a 429 or a remaining of 0 with its reset.
   * Until then every `check` / `reserve` on the store — in any process sharing it — refuses
   * the key with reason `'paused'` and the wait until then, and routes to the scope's other
   * keys. A later pause never shortens an earlier one. One write: in the scope's state (on
   * Redis, in the quota's keys under the scope's hash tag). Resolves true when recorded.
   */
  pause(scope, key, untilMs) {
    return settle(() => {
      v.string(scope, 'scope')
      v.wellFormed(scope, 'scope')
      const id = key !== null && typeof key === 'object' ? key.id : key
      if (typeof id !== 'string' || id.length === 0) throw invalidArg(`key must be a key object { id } or its id (a non-empty string), got ${v.describe(key)}`)
      v.wellFormed(id, 'key')
      if (typeof untilMs !== 'number' || !Number.isFinite(untilMs) || Math.abs(untilMs) > 8.64e15) {
        throw outOfRange(`untilMs must be a time in milliseconds that a Date can hold, got ${v.describe(untilMs)}`)
      }
      const now = this.#clock()
      const day = String(this.#dayKey(now))
      const resetAt = this.#resetAt(now)
      if (this.#kind === 'memory') {
        const clock = this.#store[kClock]
        try {
          return native.quotaPause(this.#core, scope, id, untilMs, now, day, resetAt, clock ? clock() : -1)
        } catch (e) {
          throw fromNative(e)
        }
      }
      const request = { op: 'pause', scope, holdKey: id, until: untilMs, now, day, resetAt }
      return this.#kind === 'redis' ? this.#redis(request) : this.#run(scope, request, now)
    })
  }

  /**
   * A hold granted while Redis was away: its commit or rollback is queued behind its forced
   * reservation (so they reach Redis in order) and, under 'local', applied to the twin too.
   */
  #settleLocal(hold, request, onTwin) {
    const now = this.#clock()
    this.#fallback.remember({ scope: hold.scope, request: { ...request, now } })
    this.#fallback.kick()
    return this.#fallback.policy === 'local' ? onTwin(this.#fallback.local()) : true
  }

  /**
   * The clock of a commit or rollback, and the end of its day: the scope is kept at least
   * until then (its day's request count must outlive a commit), as a reservation keeps it.
   */
  #until() {
    const now = this.#clock()
    return { now, resetAt: this.#resetAt(now) }
  }

  /** `options.id()` as a string; one holding a lone surrogate could name another hold. */
  #holdId() {
    return v.wellFormed(String(this.#id()), 'options.id()')
  }

  /** `options.now()`, checked: a time in milliseconds that a Date can hold (±8.64e15). */
  #clock() {
    const now = this.#now()
    if (typeof now !== 'number' || !Number.isFinite(now) || Math.abs(now) > 8.64e15) {
      throw outOfRange(`options.now() must return a time in milliseconds that a Date can hold, got ${v.describe(now)}`)
    }
    return now
  }

  /** The memory path of commit (0) and rollback (1). */
  #settle(op, hold, tokens) {
    const { now, resetAt } = this.#until()
    const clock = this.#store[kClock]
    try {
      return native.quotaSettle(this.#core, op, hold.scope, hold.key, hold.id, tokens, now, resetAt, clock ? clock() : -1)
    } catch (e) {
      throw fromNative(e)
    }
  }

  #checkHold(hold) {
    if (hold === null || typeof hold !== 'object') throw invalidArg(`hold must be a hold returned by reserve(), got ${v.describe(hold)}`)
    for (const f of ['id', 'scope', 'key']) {
      if (typeof hold[f] !== 'string') throw invalidArg(`hold.${f} must be a string, got ${v.describe(hold[f])}`)
      v.wellFormed(hold[f], `hold.${f}`)
    }
  }

  // Synchronous wherever the estimator and the store are: on a MemoryStore with the default
  // estimator a decision is made on the calling thread and handed back already resolved.
  #decide(op, scope, keyOrKeys, req) {
    v.string(scope, 'scope')
    const now = this.#clock()
    const day = this.#dayKey(now)
    const estimate = this.#estimate(req)
    const go = (est) => {
      const tokens = nonNeg(est)
      if (this.#kind === 'memory') {
        const [keys, names, nums] = packKeys(keyOrKeys, this.#nums)
        const holdId = op === 'reserve' ? this.#holdId() : ''
        const clock = this.#store[kClock]
        const need = 8 + keys.length * 12
        if (this.#out.length < need) this.#out = new Float64Array(need * 2)
        try {
          native.quotaDecide(this.#core, op === 'reserve' ? 1 : 0, scope, names, nums, tokens, holdId, now, String(day), this.#resetAt(now), clock ? clock() : -1, this.#out)
        } catch (e) {
          throw fromNative(e)
        }
        return unpackDecision(this.#out, op, keys, names, tokens, { id: holdId, scope, day: String(day) }, this.#prevId)
      }
      // A new buffer: the keys are read again after the call (a reservation forced on Redis).
      const [keys, names, nums] = packKeys(keyOrKeys, FRESH)
      const holdId = op === 'reserve' ? this.#holdId() : ''
      const resetAt = this.#resetAt(now)
      // What a `mutate` store (a user's, or the twin's) takes: JSON.
      const json = () => ({ op, scope, keys: keyInputs(names, nums), tokens, holdId, now, day, resetAt })
      const count = (d) => {
        this.#stats.decisions++
        if (!d.ok) bump(this.#stats.refused, d.reason ?? 'none')
        return d
      }
      if (this.#kind !== 'redis') return then(this.#run(scope, json(), now), (d) => shape(op, keys, count(d)))
      const dayText = String(day)
      const request = { op, scope, names, nums, tokens, holdId, now, day: dayText, resetAt }
      const hold = { id: holdId, scope, day: dayText }
      const unpack = ([p, prevId]) => unpackDecision(p, op, keys, names, tokens, hold, () => prevId)
      const open = () =>
        shape(op, keys, {
          ok: true,
          key: 0,
          reason: null,
          tokens,
          waitMs: 0,
          checks: [],
          hold: op === 'reserve' ? { id: holdId, scope, key: names[0], tokens, at: now, day: dayText, prevAt: null, prevId: null } : undefined,
        })
      const viaLocal = (l) => then(l.#run(scope, json(), now), (d) => shape(op, keys, d))
      // What a reservation granted meanwhile becomes on Redis: forced onto the key it took.
      const forced = (r) => {
        if (op !== 'reserve' || !r.ok || !r.hold) return null
        const i = keys.indexOf(r.key)
        return { scope, request: { ...request, op: 'force', names: [names[i]], nums: nums.slice(i * 7, i * 7 + 7), holdId: r.hold.id } }
      }
      return this.#fallback.run(() => this.#redis(request).then(unpack), open, viaLocal, forced).then((r) => {
        if (this.#seen !== null && r.fallback === undefined) this.#saw(scope, keys, r, now, dayText)
        count(r)
        if (r.fallback !== undefined && r.hold) r.hold.local = true
        return r
      })
    }
    return then(estimate, go)
  }

  // 'local' starts from what this process last saw: a scope the twin has not touched yet is
  // given, per key, the day's requests, the tokens in the TPM window (as one reservation at the
  // time Redis answered: no earlier than the real ones, so they never leave its window sooner)
  // and the last reservation's time behind the RPM spacing, from Redis's last answer.
  #saw(scope, given, d, at, day) {
    if (this.#seen.size >= SEEN_SCOPES && !this.#seen.has(scope)) this.#seen.delete(this.#seen.keys().next().value)
    const o = this.#options
    const keys = {}
    d.checks.forEach((c, i) => {
      const lastAt = c.rpmMs > 0 ? at + c.rpmMs - cooldownMs(given[i].rpm, o.bufferMs ?? BUFFER_MS, o.windowMs ?? WINDOW_MS) : undefined
      keys[c.key] = { used: c.dailyUsed, tokens: c.tokenUsed, lastAt }
    })
    if (d.hold) {
      const k = keys[d.hold.key]
      if (k) Object.assign(k, { used: k.used + 1, tokens: k.tokens + d.tokens, lastAt: d.hold.at })
    }
    this.#seen.set(scope, { at, day, keys })
  }

  /** The twin's first state of `scope`, in rate-budget's shape, or undefined. */
  #seedState(scope) {
    const seen = this.#seen === null ? undefined : this.#seen.get(scope)
    if (seen === undefined) return undefined
    const keys = {}
    for (const [name, k] of Object.entries(seen.keys)) {
      const state = { day: seen.day, used: k.used, hits: k.tokens > 0 ? [{ id: '', at: seen.at, tokens: k.tokens }] : [], holds: {} }
      if (k.lastAt !== undefined) state.lastAt = k.lastAt
      keys[name] = state
    }
    return { keys }
  }

  /** Runs one JSON request on the scope, atomically, on a user's store (or the twin's). */
  #run(scope, request, now = this.#clock()) {
    request.scope ??= scope
    request.now ??= now
    request.options = this.#options
    const text = JSON.stringify(request)
    return this.#store.mutate(scope, (state) => {
      let out
      try {
        out = JSON.parse(native.quotaApply(JSON.stringify(state ?? {}), text))
      } catch (e) {
        throw fromNative(e)
      }
      if (state !== null && typeof state === 'object') state.keys = out.state.keys
      return out.result
    })
  }

  /**
   * A commit or rollback of a hold Redis has: answered locally while Redis is away (the twin
   * does not know the hold: false), and replayed to Redis once it is back.
   */
  #settleRedis(request) {
    const local = (l) => l.#run(request.scope, { ...request }, request.now)
    return this.#fallback.run(() => this.#redis(request), () => true, local, { scope: request.scope, request: { ...request } }, false)
  }

  /**
   * One call on Redis, failures as errors of this realm: `request` as #decide (check,
   * reserve, force), commit, rollback and pause make it. A decision resolves to
   * `[numbers, prevId]` (the memory path's numbers), the others to whether they applied.
   */
  #redis(r) {
    let call
    try {
      if (r.op === 'commit' || r.op === 'rollback') {
        call = native.quotaSettleAsync(this.#core, r.op === 'commit' ? 0 : 1, r.scope, r.holdKey, r.holdId, r.commitTokens ?? NaN, r.now, r.resetAt)
      } else if (r.op === 'pause') {
        call = native.quotaPauseAsync(this.#core, r.scope, r.holdKey, r.until, r.now, r.day, r.resetAt)
      } else {
        call = native.quotaDecideAsync(this.#core, DECIDE[r.op], r.scope, r.names, r.nums, r.tokens, r.holdId, r.now, r.day, r.resetAt)
      }
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    return call.catch(rethrow)
  }
}

/** Rejects with the native error as an error of this realm. */
function rethrow(e) {
  throw fromNative(e)
}

/** A store given where options were expected: the store-first form of the constructor. */
function isStoreArgument(x) {
  if (typeof x === 'string') return true
  if (x === null || typeof x !== 'object') return false
  return x instanceof MemoryStore || x instanceof RedisStore || isRedisClient(x) || typeof x.mutate === 'function'
}

function badFlag(name, value) {
  throw invalidArg(`${name} must be true or false, got ${v.describe(value)}`)
}

const isThenable = (x) => x !== null && (typeof x === 'object' || typeof x === 'function') && typeof x.then === 'function'

/** `f(x)` now when `x` is a plain value; after it settles when it is a promise. */
function then(x, f) {
  return isThenable(x) ? x.then(f) : f(x)
}

/** A promise of `f()`: already resolved (or rejected) when `f` finished synchronously. */
function settle(f) {
  try {
    const out = f()
    return Promise.resolve(out)
  } catch (e) {
    return Promise.reject(e)
  }
}

/** rate-budget's result shapes. */
function shape(op, keys, d) {
  const checks = d.checks.map(checkOf)
  if (!d.ok) return { ok: false, reason: d.reason, tokens: d.tokens, waitMs: d.waitMs, checks }
  const result = { ok: true, key: keys[d.key], tokens: d.tokens, waitMs: 0, checks }
  if (op === 'reserve') result.hold = holdOf(d.hold)
  return result
}

module.exports = { Quota, QuotaManager: Quota, cooldownMs, dailyCap, tokenWaitMs, WINDOW_MS, BUFFER_MS, THRESHOLD_PCT }
