'use strict'
// The Redis backend: every model's limits shared by all the processes on one key prefix
// (createRedisBackend). Counting is jobs.lua's, through the jobsRedis* functions (whose replies
// src/binding/jobs.rs lays out): one EVALSHA to acquire, one to release; a heartbeat keeps this
// instance registered and brings back the instance count and the global counts, from which the
// limiter takes its fair share. It implements the backend
// interface described in index.js, like the in-process one (backend-local.js).
//
// When Redis cannot answer, the store-failure policy (`onStoreError`, lib/policy.js) decides:
// 'fail-closed' rejects; 'fail-open' grants; 'local' asks an in-process twin with the same
// limits, seeded from the last global counts this process saw (#seed). What a job granted
// meanwhile used, and every release that got no reply, is queued and replayed to Redis once it
// answers; Redis settles a grant once and refuses a late acquire, so nothing counts twice.

const native = require('../native')
const { invalidArg, outOfRange, fromNative } = require('../errors')
const { RedisStore, resolveStore, isRedisClient, kNative, checkSlotPrefix } = require('../stores')
const { StoreFallback, newStats, snapshot, flush } = require('../policy')
const { storePolicy } = require('../setup')
const v = require('../validate')
const { Limits, reserveOn, NEVER } = require('./backend-local')

const DAY_MS = 86_400_000

/** Marks the objects createRedisBackend makes (config.backend must be one). */
const kBackend = Symbol('tollgate.jobsBackend')

/**
 * Global limits through Redis: `{url | client, keyPrefix, heartbeatIntervalMs,
 * instanceTimeoutMs}` (or a URL string). `client` may be an ioredis / node-redis client or a
 * RedisStore.
 */
function createRedisBackend(config) {
  const o = typeof config === 'string' ? { url: config } : v.options(config, 'config')
  let store
  if (o.client !== undefined) {
    if (o.client instanceof RedisStore) store = o.client
    else if (isRedisClient(o.client)) store = RedisStore.fromClient(o.client)
    else throw invalidArg('config.client must be an ioredis or node-redis client or a RedisStore')
  } else if (o.url !== undefined || o.redis !== undefined) {
    store = resolveStore(v.id(o.url ?? o.redis, 'config.url'), 'createRedisBackend')
    if (!(store instanceof RedisStore)) throw invalidArg('config.url must be a redis:// URL')
  } else {
    throw invalidArg('createRedisBackend needs config.url or config.client')
  }
  const heartbeatIntervalMs = o.heartbeatIntervalMs === undefined ? 5000 : v.millis(o.heartbeatIntervalMs, 'config.heartbeatIntervalMs', 3_600_000)
  const instanceTimeoutMs = o.instanceTimeoutMs === undefined ? 15000 : v.millis(o.instanceTimeoutMs, 'config.instanceTimeoutMs', 86_400_000)
  if (instanceTimeoutMs <= heartbeatIntervalMs) {
    throw outOfRange(`config.instanceTimeoutMs (${instanceTimeoutMs}) must be above config.heartbeatIntervalMs (${heartbeatIntervalMs})`)
  }
  return Object.freeze({
    [kBackend]: true,
    kind: 'redis',
    store,
    keyPrefix: o.keyPrefix === undefined ? 'llm-rate-limiter:' : jobsPrefix(v.string(o.keyPrefix, 'config.keyPrefix')),
    heartbeatIntervalMs,
    instanceTimeoutMs,
    pollIntervalMs: o.pollIntervalMs === undefined ? 100 : v.millis(o.pollIntervalMs, 'config.pollIntervalMs', 60_000),
  })
}

/** Keys are `<prefix>{limits}:instances|grants:<id>|model:<id>` (src/binding/jobs.rs): one slot. */
function jobsPrefix(p) {
  return checkSlotPrefix(p, ['instances', 'grants:i', 'model:m'].map((k) => `${p}{limits}:${k}`), 'config.keyPrefix')
}

class RedisBackend {
  #core
  #options
  #clock
  #ids
  #sliding
  #instanceId
  /** The limiter's side: `log(message, data)`, `allocate(instanceCount, counts)` after each heartbeat. */
  #host
  /** Per model, when this process last heard its global counts (the reply's clock reading). */
  #seenAt
  #fallback
  #stats = newStats()
  /** Ids of grants and of queued counts, unique in this instance (jobs.lua). */
  #grantSeq = 0
  #started = false
  #starting = null
  #stopped = false
  #heartbeat = null

  /**
   * @param cfg the limiter's configuration (config.js), with `backend` from createRedisBackend
   * @param host what the backend tells the limiter: `{log, allocate}`
   */
  constructor(cfg, host) {
    const o = cfg.backend
    this.#options = o
    this.#clock = cfg.clock
    this.#ids = cfg.ids
    this.#sliding = cfg.sliding
    this.#instanceId = cfg.instanceId
    this.#host = host
    this.#seenAt = cfg.ids.map(() => 0)
    this.#core = native.jobsRedisNew(o.store[kNative], o.keyPrefix, cfg.ids, cfg.limits, cfg.instanceId, o.instanceTimeoutMs, cfg.sliding)
    // 'local': an in-process twin with the same limits decides while Redis is away. What a job
    // granted meanwhile used is added to the global windows once Redis is back (a settle with
    // no estimate and no concurrency slot to give back): at least once, never lost.
    // The twin starts from the last global counts this process saw (see #seed).
    const twin = () => this.#seed(new Limits(cfg.limits, cfg.sliding)) // no store: the limits alone
    // Queued: 'usage' of a job granted meanwhile (no slot; counted once by its id), and
    // 'release' of a grant whose release failed or whose acquire got no reply ('cancel': the
    // acquire may still run). Redis settles a grant once and refuses a late acquire, so sending
    // again after a lost reply counts nothing twice.
    const replay = (op) =>
      op.kind === 'usage'
        ? native.jobsRedisRelease(this.#core, op.m, op.grant, 0, 0, op.tokens, op.requests, false, op.now, op.id)
        : native.jobsRedisRelease(this.#core, op.m, op.grant, op.estTokens, op.estRequests, op.tokens, op.requests, true, op.now, op.id)
    // The policy was read from the limiter's config (config.js); the store gives its health.
    const c = { store: o.store, options: { onStoreError: cfg.policy.policy }, memory: false, clock: null, stats: this.#stats }
    this.#fallback = storePolicy('LLMRateLimiter', o.keyPrefix, c, { twin, replay }).fallback
  }

  // ---- registration and heartbeat

  get started() {
    return this.#started
  }

  /** Registers this instance and starts heartbeats (once; a call while it runs joins it). */
  start() {
    this.#stopped = false
    if (this.#started) return Promise.resolve()
    if (this.#starting) return this.#starting
    this.#starting = this.#beat(true).then(
      () => {
        this.#starting = null
        // stop() came meanwhile (and unregistered): no heartbeat, or it would register again.
        if (this.#stopped) return
        this.#started = true
        const every = this.#options.heartbeatIntervalMs
        this.#heartbeat = setInterval(() => this.#beat(false).catch((e) => this.#host.log('heartbeat failed', { error: String(e && e.message) })), every)
        this.#heartbeat.unref?.()
      },
      (e) => {
        this.#starting = null
        throw e
      },
    )
    return this.#starting
  }

  /** Stops heartbeats and unregisters (when registered or registering). */
  stop() {
    this.#stopped = true
    if (this.#heartbeat) clearInterval(this.#heartbeat)
    this.#heartbeat = null
    const wasStarted = this.#started
    this.#started = false
    if (wasStarted || this.#starting) {
      return native.jobsRedisInstanceOp(this.#core, 'u', this.#clock.nativeNow()).then(
        () => undefined,
        (e) => this.#host.log('unregister failed', { error: String(e && e.message) }),
      )
    }
    return Promise.resolve()
  }

  async #beat(first) {
    let r
    try {
      r = await native.jobsRedisInstanceOp(this.#core, 'h', this.#clock.nativeNow())
    } catch (e) {
      throw fromNative(e)
    }
    const [registered, instanceCount, dropped] = r
    if (registered && !first) this.#host.log('instance was dropped by the backend and registered again', { instanceId: this.#instanceId })
    if (dropped > 0) this.#host.log('stale instances removed', { dropped })
    const at = this.#clock.now()
    this.#seenAt.fill(at)
    this.#host.allocate(instanceCount, this.#seenAt.map((_, m) => native.jobsRedisCounts(this.#core, m, at)))
  }

  /** Pushes usage counted while Redis was away (under 'fail-open' or 'local') to Redis now. */
  flush() {
    return flush(this.#fallback)
  }

  // ---- grants

  async acquire(m, t) {
    const outage = this.#fallback.skipping()
    if (outage !== null) return this.#acquireWithout(outage, m, t, true)
    const id = ++this.#grantSeq
    const now = this.#clock.nativeNow()
    let r
    try {
      this.#stats.redisCalls++
      r = await native.jobsRedisAcquire(this.#core, m, t.tokens, t.requests, now, id)
      this.#fallback.ok()
    } catch (e) {
      const err = fromNative(e)
      // No reply: the acquire may still run. Queue its cancellation (a release of the grant if
      // Redis made it, else a mark that refuses it when it arrives).
      if (StoreFallback.maybeSent(err)) this.#fallback.remember({ kind: 'cancel', m, id, grant: 0, estTokens: t.tokens, estRequests: t.requests, tokens: 0, requests: 0, now })
      return this.#acquireWithout(err, m, t, false)
    }
    this.#stats.decisions++
    this.#seenAt[m] = this.#clock.now()
    if (r[3] === 1 && this.#started) this.#host.log('instance registered again by acquire', { instanceId: this.#instanceId })
    if (r[0] === 1) return { grant: r[1], model: m, id }
    if (r[0] === 2) return NEVER
    return { retryInMs: r[2] }
  }

  /**
   * Redis could not grant: the `onStoreError` policy decides ('fail-closed' rethrows). A grant
   * made here carries `fallback` and the time it was made, for its release.
   */
  async #acquireWithout(err, m, t, skipped) {
    const now = this.#clock.nativeNow()
    const at = now >= 0 ? now : Date.now()
    const d = await this.#fallback.handle(
      err,
      () => ({ grant: 0, model: m, fallback: 'fail-open', at }),
      (twin) => {
        const r = reserveOn(twin, m, t, now)
        return r.grant !== undefined ? { grant: r.grant, model: m, fallback: 'local', at } : r
      },
      null,
      skipped,
      false,
    )
    this.#stats.decisions++
    return d
  }

  /** Settles grant `g` with `actual`; a promise only while it waits for Redis. */
  release(g, t, actual, now, jobId) {
    const m = g.model
    if (g.fallback !== undefined) {
      // Granted while Redis was away: settle the twin, and add the usage to Redis's windows
      // (in the minute the job started) once Redis is back.
      if (g.fallback === 'local') this.#fallback.local().settle(m, g.grant, t.tokens, t.requests, actual.tokens, actual.requests, true, now)
      const grant = this.#sliding ? g.at : g.at - (g.at % 60_000)
      this.#fallback.remember({ kind: 'usage', m, id: ++this.#grantSeq, grant, tokens: actual.tokens, requests: actual.requests, now })
      this.#fallback.kick()
      return undefined
    }
    const op = { kind: 'release', m, id: g.id, grant: g.grant, estTokens: t.tokens, estRequests: t.requests, tokens: actual.tokens, requests: actual.requests, now }
    if (this.#fallback.skipping() !== null) {
      // Redis is known to be away: queue it rather than wait out a timeout.
      this.#fallback.remember(op)
      return undefined
    }
    return this.#send(op, jobId)
  }

  async #send(op, jobId) {
    try {
      this.#stats.redisCalls++
      const r = await native.jobsRedisRelease(this.#core, op.m, op.grant, op.estTokens, op.estRequests, op.tokens, op.requests, true, op.now, op.id)
      this.#fallback.ok()
      this.#seenAt[op.m] = this.#clock.now()
    } catch (e) {
      // Sent again until Redis answers; it settles once (jobs.lua).
      this.#fallback.failed(fromNative(e))
      this.#fallback.remember(op)
      this.#host.log('release failed; queued to be sent again', { jobId, modelId: this.#ids[op.m], error: String(e && e.message) })
    }
  }

  // ---- counts

  /**
   * The global counts this process last heard (its last acquire, release or heartbeat reply),
   * rolled to the current windows by the engine (`jobsRedisCounts`): no round trip.
   */
  counts(m) {
    return native.jobsRedisCounts(this.#core, m, this.#clock.now())
  }

  /**
   * 'local' starts from what this process last saw: per model, the global minute and day
   * counts and the jobs in flight, as of the Redis reply that carried them (counted at that
   * time: no earlier than the real ones, so they never leave the twin's windows sooner). The
   * day's count beyond the minute's goes a minute earlier, so only the day holds it.
   */
  #seed(core) {
    for (let m = 0; m < this.#seenAt.length; m++) {
      const at = this.#seenAt[m]
      if (!(at > 0)) continue
      const [mt, mr, dt, dr, inFlight] = native.jobsRedisCounts(this.#core, m, at)
      for (let i = 0; i < inFlight; i++) if (core.reserve(m, 0, 0, at) < 0) break
      const earlier = at - 60_000
      if ((dt > mt || dr > mr) && Math.floor(earlier / DAY_MS) === Math.floor(at / DAY_MS)) {
        core.settle(m, earlier, 0, 0, dt - mt, dr - mr, false, earlier)
      }
      if (mt > 0 || mr > 0) core.settle(m, at, 0, 0, mt, mr, false, at)
    }
    return core
  }

  /**
   * Refused until a window resets: ask Redis again then, or sooner (other instances release
   * too, unseen here): every pollIntervalMs at most.
   */
  wakeDelay(retryInMs) {
    const poll = this.#options.pollIntervalMs
    return retryInMs < 0 ? poll : Math.min(retryInMs, poll)
  }

  /** The store-failure counters (getStats().store). */
  storeStats() {
    return snapshot(this.#stats, this.#fallback)
  }
}

module.exports = { createRedisBackend, RedisBackend, kBackend }
