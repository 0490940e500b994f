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

const { StoreError, invalidArg, outOfRange } = require('./errors')

const POLICIES = ['fail-closed', 'fail-open', 'local']
/** After Redis timed out or was unreachable, calls skip it for this long (ms) by default. */
const DEFAULT_RETRY_MS = 1000
/** Marks the in-process twin a class makes for 'local': its counters are not registered. */
const kLocalTwin = Symbol('tollgate.localTwin')
const OUTAGE = new Set(['ERR_TOLLGATE_STORE_TIMEOUT', 'ERR_TOLLGATE_STORE_UNAVAILABLE'])
/** Most counts kept for replay; beyond it the oldest are dropped (and counted in stats). */
const MAX_PENDING = 100_000

/** The policy from a class's options, else the store's, else 'fail-closed'. */
function policyOf(o, storeDefault) {
  const p = o.onStoreError !== undefined ? o.onStoreError : storeDefault !== undefined ? storeDefault : 'fail-closed'
  if (!POLICIES.includes(p)) {
    throw invalidArg(`options.onStoreError must be one of ${POLICIES.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(p)}`)
  }
  return p
}

/** `{policy, retryMs}` from a class's options over its store's (`storeDefaults`). */
function fallbackOptions(o, storeDefaults) {
  const d = storeDefaults || {}
  const policy = policyOf(o, d.policy)
  let retryMs = d.retryMs === undefined ? DEFAULT_RETRY_MS : d.retryMs
  if (o.storeRetryMs !== undefined) retryMs = retryMsOf(o.storeRetryMs, 'options.storeRetryMs')
  return { policy, retryMs }
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
  return { decisions: 0, redisCalls: 0, refused: {}, errors: {}, fallbacks: { 'fail-open': 0, local: 0 }, replayed: 0, dropped: 0, blockedLocally: 0 }
}

function bump(map, key, n = 1) {
  map[key] = (map[key] || 0) + n
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
  #retryMs
  #outage = null
  #retryAt = 0
  #timer = null

  /**
   * @param policy one of POLICIES
   * @param makeLocal () => the same class on a private MemoryStore, for 'local'
   * @param replay (op) => Promise: sends one queued count to Redis
   * @param stats the instance's counters
   * @param retryMs after a timeout or an unreachable Redis, calls skip Redis this long
   */
  constructor(policy, makeLocal, replay, stats, retryMs = DEFAULT_RETRY_MS) {
    this.#retryMs = retryMs
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

  /** The in-process twin used under 'local' (made on first use). */
  local() {
    if (this.#local === null) this.#local = this.#makeLocal()
    return this.#local
  }

  /**
   * The error of a recent outage while calls should skip Redis (they then go straight to the
   * policy, so an outage costs one timeout per `retryMs`, not one per call), else null.
   */
  skipping() {
    if (this.#outage === null) return null
    if (Date.now() < this.#retryAt) return this.#outage
    this.#outage = null
    return null
  }

  /**
   * Redis answered: push queued counts in the background (errors keep them queued).
   */
  ok() {
    this.#outage = null
    if (this.#pending.length > 0 && this.#replaying === null) this.#replaying = this.#drain().finally(() => (this.#replaying = null))
  }

  async #drain() {
    while (this.#pending.length > 0) {
      const op = this.#pending[0]
      try {
        this.#stats.redisCalls++
        await this.#replay(op)
      } catch {
        return false
      }
      this.#pending.shift()
      this.#stats.replayed++
      this.#outage = null // Redis answered: calls need not skip it any longer
    }
    return true
  }

  /**
   * A Redis call whose work is queued (not answered by the policy) failed: count the error and,
   * for a timeout or an unreachable Redis, skip Redis for `retryMs` as `handle` does.
   */
  failed(err) {
    if (!(err instanceof StoreError)) return
    bump(this.#stats.errors, err.code)
    if (OUTAGE.has(err.code)) {
      this.#outage = err
      this.#retryAt = Date.now() + this.#retryMs
    }
  }

  /** Whether `err` may come from a command Redis still runs (a timeout, a cut connection). */
  static maybeSent(err) {
    return err instanceof StoreError && OUTAGE.has(err.code)
  }

  /** Starts pushing queued counts unless Redis is known to be away. */
  kick() {
    if (this.skipping() === null) this.ok()
  }

  /** Pushes queued counts now; resolves to true when none is left. */
  async flush() {
    if (this.#replaying !== null) await this.#replaying
    if (this.#pending.length === 0) return true
    return (this.#replaying = this.#drain().finally(() => (this.#replaying = null)))
  }

  /** Queues a count made while Redis was away, and tries to push the queue every `retryMs`. */
  remember(op) {
    if (op === null || op === undefined) return
    this.#pending.push(op)
    if (this.#pending.length > MAX_PENDING) {
      this.#pending.shift()
      this.#stats.dropped++
    }
    this.#schedule()
  }

  // Replays even when no call comes after Redis is back. Unref'd: it never keeps Node alive
  // (call flush() before exiting to be sure the queue reached Redis).
  #schedule() {
    if (this.#timer !== null) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#pending.length === 0) return
      this.kick()
      this.#schedule()
    }, Math.max(10, this.#retryMs))
    if (typeof this.#timer.unref === 'function') this.#timer.unref()
  }

  /**
   * Runs `call` (a Redis call, rejecting with errors of this realm) under the policy: skipped
   * while a recent outage lasts, and `handle`d when it fails.
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
   * A Redis call failed with `err`. Under 'fail-closed' (or for an error that is not a store
   * error) rethrows it; otherwise answers with `open()` or `viaLocal(localInstance)`, marks the
   * result, and queues `count` (what the call added) for replay.
   */
  handle(err, open, viaLocal, count, skipped = false, marked = true) {
    if (!(err instanceof StoreError)) throw err
    if (!skipped) {
      bump(this.#stats.errors, err.code)
      if (OUTAGE.has(err.code)) {
        this.#outage = err
        this.#retryAt = Date.now() + this.#retryMs
      }
    }
    if (this.#policy === 'fail-closed' || err.code === 'ERR_TOLLGATE_STORE_CLOSED') throw err
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
  const rows = { decisions: [], redisCalls: [], refused: [], blocked: [], errors: [], fallbacks: [], replayed: [], dropped: [] }
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
    ...extra,
  }
}

/** A class's `flush()`: pushes its replay queue to Redis; true at once on a MemoryStore. */
function flush(fallback) {
  return fallback ? fallback.flush() : Promise.resolve(true)
}

module.exports = { kLocalTwin, POLICIES, DEFAULT_RETRY_MS, policyOf, fallbackOptions, retryMsOf, StoreFallback, newStats, bump, track, metrics, snapshot, flush }
