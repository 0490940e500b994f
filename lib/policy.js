'use strict'
// What a Redis-backed class does when Redis cannot answer: `onStoreError`.
//
// - 'fail-closed' (default): the call rejects with a typed StoreError. Nothing is decided
//   without the store, and the caller sees why (err.code) and chooses.
// - 'fail-open': the call answers as if there were no limit (admitted, cache miss), marked
//   `fallback: 'fail-open'`.
// - 'local': the call is answered by an in-process engine with the same limits (a private
//   MemoryStore), marked `fallback: 'local'`.
//
// With 'fail-open' and 'local', amounts that were counted (requests admitted, tokens or dollars
// recorded) are queued and replayed to Redis, with their original time, once it answers again,
// so no count is lost; `flush()` pushes them explicitly (for example before exiting).

const { StoreError, invalidArg, outOfRange, fromNative } = require('./errors')

const POLICIES = ['fail-closed', 'fail-open', 'local']
/**
 * After Redis timed out or was unreachable, every class on the store skips it for at least this
 * long (ms) unless the store's `storeRetryMs` says otherwise: three command timeouts, never under
 * a second, so the probe of a hung server (one PING that may itself time out) is never busy
 * most of the time.
 */
function defaultRetryMs(commandTimeoutMs) {
  return Math.max(1000, 3 * commandTimeoutMs)
}
const DEFAULT_RETRY_MS = defaultRetryMs(1000)
/** Marks the in-process twin a class makes for 'local': its counters are not registered. */
const kLocalTwin = Symbol('tollgate.localTwin')
/** The only errors a policy answers: Redis is away. Everything else says what is wrong. */
const OUTAGE = new Set(['ERR_TOLLGATE_STORE_TIMEOUT', 'ERR_TOLLGATE_STORE_UNAVAILABLE'])
/** Most counts kept for replay; beyond it the oldest are dropped (and counted in stats). */
const MAX_PENDING = 100_000
/** Interval of probes while Redis refuses connections (each fails at once, so costs nothing). */
const FAST_PROBE_MS = 200
/** Warning code of a server whose maxmemory-policy can evict tollgate's keys. */
const EVICTION_WARNING = 'TOLLGATE_REDIS_EVICTION'

/** The policy from a class's options, else the store's, else 'fail-closed'. */
function policyOf(o, storeDefault) {
  const p = o.onStoreError !== undefined ? o.onStoreError : storeDefault !== undefined ? storeDefault : 'fail-closed'
  if (!POLICIES.includes(p)) {
    throw invalidArg(`options.onStoreError must be one of ${POLICIES.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(p)}`)
  }
  return p
}

/**
 * `{policy, health}` from a class's options over its store's (`storeDefaults`, the store's
 * `kPolicy`): the policy, and the store's one health state shared by all its classes. A class's
 * own `storeRetryMs` is still validated, but the interval belongs to the store now (one health
 * state per store). `retryMs` is the same health object, for callers that pass it on under its
 * old name.
 */
/** The failure-policy options every Redis-backed class takes. */
const POLICY_OPTIONS = ['onStoreError', 'storeRetryMs']

function fallbackOptions(o, storeDefaults) {
  const d = storeDefaults || {}
  const policy = policyOf(o, d.policy)
  if (o.storeRetryMs !== undefined) retryMsOf(o.storeRetryMs, 'options.storeRetryMs')
  const health = d.health || new StoreHealth(d.retryMs === undefined ? DEFAULT_RETRY_MS : d.retryMs, null)
  return { policy, health, retryMs: health }
}

function retryMsOf(x, name) {
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number of milliseconds, got ${typeof x}`)
  if (!Number.isFinite(x) || x < 0 || x > 3_600_000) {
    throw outOfRange(`${name} must be from 0 to 3600000 milliseconds, got ${x}`)
  }
  return Math.round(x)
}

/** Counters behind `stats()` and `metrics()`. */
function newStats() {
  return { decisions: 0, redisCalls: 0, refused: {}, errors: {}, fallbacks: { 'fail-open': 0, local: 0 }, replayed: 0, dropped: 0, blockedLocally: 0, flushFailures: 0 }
}

function bump(map, key, n = 1) {
  map[key] = (map[key] || 0) + n
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Whether Redis is reachable, for every class on one store. The first call that times out or
 * finds Redis unreachable marks the store down; until a probe — one PING, sent by this object
 * every `retryMs`, never a user's call — gets an answer, every class on the store skips Redis
 * and goes straight to its policy. So a request that touches N classes during an outage pays
 * at most one timeout, and an outage costs one timeout in all, not one per class per interval.
 *
 * It also reads the server's memory policy (via the native store, on the first connection and
 * after each outage) and warns once per store when keys can be evicted.
 */
class StoreHealth {
  #retryMs
  #native
  #outage = null
  #since = 0
  #probing = false
  #timer = null
  #probes = 0
  /** Fallbacks with counts waiting for replay: pushed when the store comes back. */
  #waiting = new Set()
  #memoryGeneration = 0
  #warned = false
  #boundMs

  /**
   * @param retryMs interval between probes while the store is down
   * @param native the NativeStore to PING (null: no probe; the next call after `retryMs` tries)
   * @param boundMs how long one call may take (connect + command timeouts): flush()'s unit
   */
  constructor(retryMs, native, boundMs = 1500) {
    this.#retryMs = retryMs
    this.#native = native
    this.#boundMs = boundMs
  }

  get retryMs() {
    return this.#retryMs
  }

  get boundMs() {
    return this.#boundMs
  }

  /** The outage error while Redis is known to be away, else null. */
  get outage() {
    if (this.#outage !== null && this.#native === null && Date.now() >= this.#since + this.#retryMs) this.#outage = null
    return this.#outage
  }

  /** A call failed with `err`: an outage marks the store down (once) and starts the probes. */
  failed(err) {
    if (!(err instanceof StoreError) || !OUTAGE.has(err.code)) return
    if (this.#outage !== null) return
    this.#outage = err
    this.#since = Date.now()
    // Refused or cut (not hung): a probe costs nothing, so the first comes soon.
    this.#schedule(err.code === 'ERR_TOLLGATE_STORE_UNAVAILABLE' ? Math.min(this.#retryMs, FAST_PROBE_MS) : this.#retryMs)
  }

  /** A call got an answer: the store is up; queued counts of every class are pushed. */
  up() {
    if (this.#native !== null) this.#checkMemory()
    if (this.#outage === null) return
    this.#outage = null
    for (const f of this.#waiting) f.kick()
  }

  /** `fallback` has counts to replay (true) or none left (false). */
  waiting(fallback, yes) {
    if (yes) this.#waiting.add(fallback)
    else this.#waiting.delete(fallback)
  }

  /** Counts waiting for replay in every class on the store. */
  get pending() {
    let n = 0
    for (const f of this.#waiting) n += f.pending
    return n
  }

  /** Pushes every class's queued counts; resolves to the number left. */
  async flushAll(timeoutMs) {
    await Promise.all([...this.#waiting].map((f) => f.flush(timeoutMs)))
    return this.pending
  }

  #schedule(delay) {
    if (this.#timer !== null || this.#native === null) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#probe()
    }, delay)
    // Never keeps Node alive (flush() or close({ flush: true }) before exiting).
    if (typeof this.#timer.unref === 'function') this.#timer.unref()
  }

  #probe() {
    if (this.#outage === null || this.#probing) return
    if (this.#native.closed) return
    this.#probing = true
    this.#probes++
    const sent = Date.now()
    this.#native.ping().then(
      () => {
        this.#probing = false
        this.up()
      },
      () => {
        this.#probing = false
        // A probe that failed at once (refused: the server is down or restarting) is cheap to
        // repeat soon; one that waited out a timeout (a hung server) waits the whole interval.
        this.#schedule(Date.now() - sent < FAST_PROBE_MS / 4 ? Math.min(this.#retryMs, FAST_PROBE_MS) : this.#retryMs)
      },
    )
  }

  /** Probes now (rather than at the next interval); resolves null when Redis answered, else the error. */
  async probeNow() {
    if (this.#outage === null) return null
    if (this.#native === null) return this.#outage
    try {
      this.#probes++
      await this.#native.ping()
      this.up()
      return null
    } catch (e) {
      return fromNative(e)
    }
  }

  #checkMemory() {
    const m = this.#native.serverMemory()
    if (m === null || m.generation === this.#memoryGeneration) return
    this.#memoryGeneration = m.generation
    if (m.evicts && !this.#warned) {
      this.#warned = true
      process.emitWarning(
        `Redis maxmemory-policy is ${m.policy}: it can evict tollgate's keys (every one has a TTL), which silently resets limits, budgets and quotas. Use maxmemory-policy noeviction or a dedicated instance, or pass evictionPolicy: 'ignore' to RedisStore.`,
        { code: EVICTION_WARNING, type: 'TollgateWarning' },
      )
    }
  }

  /** What `RedisStore.health()` shows. */
  report() {
    const m = this.#native === null ? null : this.#native.serverMemory()
    const o = this.outage
    return {
      status: o === null ? 'up' : 'down',
      outage: o === null ? null : { code: o.code, message: o.message, since: this.#since },
      retryMs: this.#retryMs,
      probes: this.#probes,
      pending: this.pending,
      maxmemory: m && m.maxmemory !== null && m.maxmemory !== undefined ? m.maxmemory : null,
      maxmemoryPolicy: m && m.policy !== null && m.policy !== undefined ? m.policy : null,
      evicts: m ? m.evicts : false,
    }
  }

  /** Stops probing (the store was closed). */
  stop() {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }
}

/** Failure handling for one class instance on Redis. */
class StoreFallback {
  #policy
  #makeLocal
  #local = null
  #replay
  #pending = []
  #replaying = null
  #stats
  #health
  #timer = null

  /**
   * @param policy one of POLICIES
   * @param makeLocal () => the same class on a private MemoryStore, for 'local'
   * @param replay (op) => Promise: sends one queued count to Redis
   * @param stats the instance's counters
   * @param health the store's StoreHealth (from `fallbackOptions`); a number makes a private
   *   one that skips Redis for that many ms after an outage
   */
  constructor(policy, makeLocal, replay, stats, health = DEFAULT_RETRY_MS) {
    this.#health = health instanceof StoreHealth ? health : new StoreHealth(health, null)
    this.#policy = policy
    this.#makeLocal = makeLocal
    this.#replay = replay
    this.#stats = stats
  }

  get policy() {
    return this.#policy
  }

  get pending() {
    return this.#pending.length
  }

  get health() {
    return this.#health
  }

  /** The in-process twin used under 'local' (made on first use). */
  local() {
    if (this.#local === null) this.#local = this.#makeLocal()
    return this.#local
  }

  /**
   * The error of an outage while calls should skip Redis (they then go straight to the policy,
   * so an outage costs one timeout for the whole store, not one per call or class), else null.
   */
  skipping() {
    return this.#health.outage
  }

  /**
   * Redis answered: push queued counts in the background (errors keep them queued).
   */
  ok() {
    this.#health.up()
    if (this.#pending.length > 0) this.#startDrain()
  }

  /** The replay under way, or a new one: one at a time, so no count is sent twice. */
  #startDrain() {
    if (this.#replaying === null) this.#replaying = this.#drain().finally(() => (this.#replaying = null))
    return this.#replaying
  }

  async #drain() {
    while (this.#pending.length > 0) {
      const op = this.#pending[0]
      try {
        this.#stats.redisCalls++
        await this.#replay(op)
      } catch (e) {
        this.failed(e)
        return false
      }
      this.#pending.shift()
      this.#stats.replayed++
      this.#health.up() // Redis answered: calls need not skip it any longer
    }
    this.#health.waiting(this, false)
    return true
  }

  /**
   * A Redis call whose work is queued (not answered by the policy) failed: count the error and,
   * for a timeout or an unreachable Redis, mark the store down as `handle` does.
   */
  failed(err) {
    if (!(err instanceof StoreError)) return
    bump(this.#stats.errors, err.code)
    this.#health.failed(err)
  }

  /** Whether `err` may come from a command Redis still runs (a timeout, a cut connection). */
  static maybeSent(err) {
    return err instanceof StoreError && OUTAGE.has(err.code)
  }

  /** Whether `err` means Redis is away (the only errors a policy answers). */
  static isOutage(err) {
    return err instanceof StoreError && OUTAGE.has(err.code)
  }

  /** Starts pushing queued counts unless Redis is known to be away. */
  kick() {
    if (this.skipping() === null) this.ok()
  }

  /**
   * Pushes queued counts now, trying again (probing the store first) until none is left or
   * `timeoutMs` has passed — by default twice the store's bound of one call, so a store that
   * has just come back (its connection still being made) is waited for. Resolves to true when
   * none is left; each failed attempt is counted in `stats().flushFailures` and its error in
   * `stats().errors`.
   */
  async flush(timeoutMs) {
    const bound = timeoutMs === undefined ? 2 * this.#health.boundMs : timeoutMs
    const deadline = Date.now() + bound
    for (;;) {
      if (this.#replaying !== null) await this.#replaying
      if (this.#pending.length === 0) return true
      const away = this.skipping() === null ? null : await this.#health.probeNow()
      if (away === null) {
        if (this.#replaying !== null) await this.#replaying
        if (this.#pending.length === 0 || (await this.#startDrain())) return true
      } else if (away instanceof StoreError) {
        bump(this.#stats.errors, away.code)
      }
      this.#stats.flushFailures++
      const left = deadline - Date.now()
      if (left <= 0) return false
      await sleep(Math.min(50, left))
    }
  }

  /** Queues a count made while Redis was away, and tries to push the queue every interval. */
  remember(op) {
    if (op === null || op === undefined) return
    this.#pending.push(op)
    this.#health.waiting(this, true)
    if (this.#pending.length > MAX_PENDING) {
      this.#pending.shift()
      this.#stats.dropped++
    }
    this.#schedule()
  }

  // Replays even when no call comes and no outage was seen (a replay that failed with another
  // error). Unref'd: it never keeps Node alive (flush() before exiting).
  #schedule() {
    if (this.#timer !== null) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#pending.length === 0) return
      this.kick()
      this.#schedule()
    }, Math.max(10, this.#health.retryMs))
    if (typeof this.#timer.unref === 'function') this.#timer.unref()
  }

  /**
   * Runs `call` (a Redis call, rejecting with errors of this realm) under the policy: skipped
   * while an outage of the store lasts, and `handle`d when it fails.
   */
  run(call, open, viaLocal, count, mark = true) {
    try {
      const outage = this.skipping()
      if (outage !== null) return this.handle(outage, open, viaLocal, count, true, mark)
      this.#stats.redisCalls++
      return call().then(
        (r) => {
          this.ok()
          return r
        },
        (e) => this.handle(e, open, viaLocal, count, false, mark),
      )
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /**
   * A Redis call failed with `err`. Under 'fail-closed', or for an error that does not mean
   * Redis is away (bad credentials, an ACL, a full server, a key of another type, a script
   * error: retrying elsewhere would hide it), rethrows it; otherwise answers with `open()` or
   * `viaLocal(localInstance)`, marks the result, and queues `count` (what the call added) for
   * replay.
   */
  handle(err, open, viaLocal, count, skipped = false, marked = true) {
    if (!(err instanceof StoreError)) throw err
    if (!skipped) {
      bump(this.#stats.errors, err.code)
      this.#health.failed(err)
    }
    if (this.#policy === 'fail-closed' || !OUTAGE.has(err.code)) throw err
    const p = this.#policy
    this.#stats.fallbacks[p]++
    const mark = (r) => {
      if (r !== null && typeof r === 'object') {
        r.fallback = p
        r.error = err
      }
      return r
    }
    const answer = p === 'local' ? viaLocal(this.local()) : open()
    return Promise.resolve(answer).then((r) => {
      this.remember(typeof count === 'function' ? count(r) : count)
      return marked ? mark(r) : r
    })
  }
}

/** Prometheus exposition of every instance's counters that registered (see `track`). */
const registry = new Map()

/** Registers a class instance's counters under its class name and prefix. */
function track(className, prefix, stats) {
  const key = `${className}\u0000${prefix}`
  let list = registry.get(key)
  if (!list) registry.set(key, (list = []))
  list.push(new WeakRef(stats))
}

function escape(label) {
  return String(label).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** All counters in the Prometheus text format. */
function metrics() {
  const rows = { decisions: [], redisCalls: [], refused: [], blocked: [], errors: [], fallbacks: [], replayed: [], dropped: [], flushFailures: [] }
  for (const [key, refs] of registry) {
    const [cls, prefix] = key.split('\u0000')
    const sum = newStats()
    let alive = 0
    for (const ref of refs) {
      const s = ref.deref()
      if (!s) continue
      alive++
      sum.decisions += s.decisions
      sum.redisCalls += s.redisCalls
      sum.replayed += s.replayed
      sum.dropped += s.dropped
      sum.blockedLocally += s.blockedLocally
      sum.flushFailures += s.flushFailures || 0
      for (const [k, n] of Object.entries(s.refused)) bump(sum.refused, k, n)
      for (const [k, n] of Object.entries(s.errors)) bump(sum.errors, k, n)
      for (const [k, n] of Object.entries(s.fallbacks)) bump(sum.fallbacks, k, n)
    }
    if (alive === 0) {
      registry.delete(key)
      continue
    }
    const l = `class="${escape(cls)}",prefix="${escape(prefix)}"`
    rows.decisions.push(`tollgate_decisions_total{${l}} ${sum.decisions}`)
    rows.redisCalls.push(`tollgate_redis_calls_total{${l}} ${sum.redisCalls}`)
    for (const [k, n] of Object.entries(sum.refused)) rows.refused.push(`tollgate_refusals_total{${l},reason="${escape(k)}"} ${n}`)
    for (const [k, n] of Object.entries(sum.errors)) rows.errors.push(`tollgate_store_errors_total{${l},code="${escape(k)}"} ${n}`)
    for (const [k, n] of Object.entries(sum.fallbacks)) rows.fallbacks.push(`tollgate_fallbacks_total{${l},policy="${k}"} ${n}`)
    rows.blocked.push(`tollgate_blocked_locally_total{${l}} ${sum.blockedLocally}`)
    rows.replayed.push(`tollgate_replayed_total{${l}} ${sum.replayed}`)
    rows.dropped.push(`tollgate_replay_dropped_total{${l}} ${sum.dropped}`)
    rows.flushFailures.push(`tollgate_flush_failures_total{${l}} ${sum.flushFailures}`)
  }
  const help = {
    decisions: ['tollgate_decisions_total', 'Calls answered (by the store or a fallback).'],
    redisCalls: ['tollgate_redis_calls_total', 'Script calls sent to Redis (round trips; one can carry many limiter decisions).'],
    refused: ['tollgate_refusals_total', 'Calls refused, by reason.'],
    blocked: ['tollgate_blocked_locally_total', 'Refusals answered from the blocked-key cache, with no Redis command.'],
    errors: ['tollgate_store_errors_total', 'Store (Redis) failures, by error code.'],
    fallbacks: ['tollgate_fallbacks_total', 'Calls answered by an onStoreError policy instead of the store.'],
    replayed: ['tollgate_replayed_total', 'Counts made during a store outage and replayed to it afterwards.'],
    dropped: ['tollgate_replay_dropped_total', 'Counts dropped because the replay queue was full.'],
    flushFailures: ['tollgate_flush_failures_total', 'flush() attempts that left counts queued (Redis still away).'],
  }
  let out = ''
  for (const [k, [name, text]] of Object.entries(help)) {
    out += `# HELP ${name} ${text}\n# TYPE ${name} counter\n`
    for (const row of rows[k]) out += `${row}\n`
  }
  return out
}

/** A copy of the counters for `stats()`, with the failure policy (null on a MemoryStore) and the counts waiting for replay. */
function snapshot(stats, fallback, extra) {
  return {
    decisions: stats.decisions,
    redisCalls: stats.redisCalls,
    refused: { ...stats.refused },
    errors: { ...stats.errors },
    fallbacks: { ...stats.fallbacks },
    replayed: stats.replayed,
    dropped: stats.dropped,
    blockedLocally: stats.blockedLocally,
    policy: fallback ? fallback.policy : null,
    pending: fallback ? fallback.pending : 0,
    flushFailures: stats.flushFailures,
    maxmemoryPolicy: fallback ? fallback.health.report().maxmemoryPolicy : null,
    storeStatus: fallback ? (fallback.skipping() === null ? 'up' : 'down') : null,
    ...extra,
  }
}

/** A class's `flush()`: pushes its replay queue to Redis; true at once on a MemoryStore. */
function flush(fallback, timeoutMs) {
  return fallback ? fallback.flush(timeoutMs) : Promise.resolve(true)
}

module.exports = {
  POLICY_OPTIONS, kLocalTwin, POLICIES, DEFAULT_RETRY_MS, EVICTION_WARNING, defaultRetryMs, policyOf, fallbackOptions, retryMsOf, StoreHealth, StoreFallback, newStats, bump, track, metrics, snapshot, flush }
