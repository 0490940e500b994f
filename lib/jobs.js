'use strict'
// createLLMRateLimiter: queue LLM jobs over several models with per-model limits, fall back
// along an escalation order, reserve estimates and settle real usage, track cost; optionally
// share every model's limits across processes with createRedisBackend.
//
// The limit maths (fixed minute / UTC-day windows, reserve and window-aware settle, fair share,
// ratio adjustment) is engine/jobs.rs; locally it runs in JobLimitsCore (synchronous), on
// Redis in jobs.lua (one EVALSHA at acquire, one at release). This file holds the queues,
// timers and callbacks.

const v8 = require('node:v8')
const { randomBytes } = require('node:crypto')
const native = require('./native')
const { codes, invalidArg, outOfRange, fromNative, withCode } = require('./errors')
const { RedisStore, resolveStore, isRedisClient, kNative, kPolicy, checkSlotPrefix } = require('./stores')
const { fallbackOptions, StoreFallback, newStats, track, snapshot, flush } = require('./policy')
const v = require('./validate')
const { usageFrom } = require('./usage')
const { toUsd } = require('./cost')

const MAX_LIMIT = Number.MAX_SAFE_INTEGER
/** setTimeout's longest delay; longer maxWaitMS values are capped here (24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1
const DAY_MS = 86_400_000
const LIMIT_FIELDS = ['tokensPerMinute', 'requestsPerMinute', 'tokensPerDay', 'requestsPerDay', 'maxConcurrentRequests']
// Option names, so that a misspelt one (`rpm`) is refused instead of setting no limit.
const CONFIG_KEYS = ['models', 'escalationOrder', 'order', 'resourceEstimationsPerJob', 'ratioAdjustmentConfig', 'memory', 'backend', 'windows', 'maxAttempts', 'instanceId', 'now', 'onAvailableSlotsChange', 'onOverage', 'onLog', 'onStoreError', 'storeRetryMs']
const MODEL_KEYS = [...LIMIT_FIELDS, 'minCapacity', 'maxCapacity', 'pricing']
const PRICING_KEYS = ['input', 'cached', 'output']
const JOB_TYPE_KEYS = ['estimatedUsedTokens', 'estimatedNumberOfRequests', 'estimatedUsedMemoryKB', 'ratio', 'maxWaitMS']
const MEMORY_KEYS = ['freeMemoryRatio', 'recalculationIntervalMs', 'maxMemoryKB']

const DEFAULT_RATIO_ADJUSTMENT_CONFIG = Object.freeze({
  highLoadThreshold: 0.7,
  lowLoadThreshold: 0.3,
  maxAdjustment: 0.2,
  minRatio: 0.01,
  adjustmentIntervalMs: 5000,
  releasesPerAdjustment: 10,
  minJobTypeCapacity: 1,
})

function jobError(code, message, cause) {
  const e = withCode(new Error(message, cause === undefined ? undefined : { cause }), code)
  return e
}

/** The default patience on a model: until the next minute, plus 5 s (6–65 s). */
function getDefaultMaxWaitMS(now = Date.now()) {
  return (60 - Math.floor((now % 60000) / 1000) + 5) * 1000
}

function nonNegative(x, name) {
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number, got ${v.describe(x)}`)
  if (!Number.isFinite(x) || x < 0) throw outOfRange(`${name} must be a finite number ≥ 0, got ${x}`)
  return x
}

function optInt(x, name) {
  return x === undefined || x === null ? 0 : v.integer(x, name, 0, MAX_LIMIT)
}

function fnOrNull(x, name) {
  return x === undefined || x === null ? null : v.fn(x, name)
}

// ---- createRedisBackend ----------------------------------------------------------------------

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

// ---- configuration ---------------------------------------------------------------------------

function readModels(models) {
  if (models === null || typeof models !== 'object' || Array.isArray(models)) {
    throw invalidArg(`config.models must be an object of model configs, got ${v.describe(models)}`)
  }
  const ids = Object.keys(models)
  if (ids.length === 0) throw outOfRange('At least one model must be configured in models')
  return ids.map((id) => {
    const m = v.knownKeys(v.options(models[id], `config.models.${id}`), MODEL_KEYS, `config.models.${id}`)
    const limits = LIMIT_FIELDS.map((f) => optInt(m[f], `config.models.${id}.${f}`))
    // The price of a job: `pricing` (USD per 1M tokens; `cached` defaults to `input`), else
    // the built-in catalog (priceOf), else none (its jobs' cost is null).
    let price = native.priceOfModel(id)
    if (m.pricing !== undefined) {
      const p = v.knownKeys(v.options(m.pricing, `config.models.${id}.pricing`), PRICING_KEYS, `config.models.${id}.pricing`)
      const input = nonNegative(p.input ?? 0, `config.models.${id}.pricing.input`)
      const cached = p.cached === undefined ? input : nonNegative(p.cached, `config.models.${id}.pricing.cached`)
      const output = nonNegative(p.output ?? 0, `config.models.${id}.pricing.output`)
      const nano = (x) => Math.round(x * 1e9)
      price = [nano(input), nano(cached), nano(input), nano(output), 500_000]
    }
    return { id, limits, price, minCapacity: optInt(m.minCapacity, 'minCapacity'), maxCapacity: m.maxCapacity ?? null }
  })
}

function readJobTypes(cfg, modelIds) {
  const src = cfg === undefined ? { default: {} } : cfg
  if (src === null || typeof src !== 'object' || Array.isArray(src)) {
    throw invalidArg(`config.resourceEstimationsPerJob must be an object, got ${v.describe(src)}`)
  }
  const ids = Object.keys(src)
  if (ids.length === 0) throw outOfRange('resourceEstimationsPerJob must contain at least one job type')
  const types = ids.map((id) => {
    const base = `config.resourceEstimationsPerJob.${id}`
    const t = v.knownKeys(v.options(src[id], base), JOB_TYPE_KEYS, base)
    const r = t.ratio === undefined ? {} : v.knownKeys(v.options(t.ratio, `${base}.ratio`), ['initialValue', 'flexible'], `${base}.ratio`)
    let initial = null
    if (r.initialValue !== undefined) {
      nonNegative(r.initialValue, `${base}.ratio.initialValue`)
      if (r.initialValue <= 0) throw outOfRange(`Job type '${id}' ratio.initialValue must be greater than 0. Got: ${r.initialValue}`)
      if (r.initialValue > 1) throw outOfRange(`Job type '${id}' ratio.initialValue must be at most 1. Got: ${r.initialValue}`)
      initial = r.initialValue
    }
    const maxWait = new Map()
    if (t.maxWaitMS !== undefined) {
      const mw = v.options(t.maxWaitMS, `${base}.maxWaitMS`)
      for (const model of Object.keys(mw)) {
        const i = modelIds.indexOf(model)
        if (i < 0) throw outOfRange(`${base}.maxWaitMS names unknown model '${model}'`, codes.UNKNOWN_MODEL)
        maxWait.set(i, Math.min(MAX_TIMER_MS, v.integer(mw[model], `${base}.maxWaitMS.${model}`, 0, MAX_LIMIT)))
      }
    }
    return {
      id,
      tokens: optInt(t.estimatedUsedTokens, `${base}.estimatedUsedTokens`),
      requests: optInt(t.estimatedNumberOfRequests, `${base}.estimatedNumberOfRequests`),
      memoryKB: optInt(t.estimatedUsedMemoryKB, `${base}.estimatedUsedMemoryKB`),
      flexible: r.flexible === undefined ? true : Boolean(r.flexible),
      initial,
      ratio: 0,
      initialRatio: 0,
      maxWait,
      inFlight: 0,
      inFlightByModel: modelIds.map(() => 0),
      allocated: 0,
      memUsedKB: 0,
      memCapKB: Infinity,
    }
  })
  const specified = types.filter((t) => t.initial !== null)
  const sum = specified.reduce((s, t) => s + t.initial, 0)
  if (sum > 1 + 1e-4) throw outOfRange(`Sum of specified ratio.initialValue values exceeds 1. Got: ${sum}`)
  const rest = types.length - specified.length
  for (const t of types) {
    if (t.initial !== null) t.ratio = rest === 0 && sum > 0 ? t.initial / sum : t.initial
    else t.ratio = (1 - sum) / rest
    t.initialRatio = t.ratio
  }
  return types
}

/**
 * A job's usage: `{requestCount, inputTokens, cachedTokens, outputTokens}`, where
 * `inputTokens` counts every input token, cached ones included (as usageFrom and every class
 * count them), or `{requestCount, usage}` with anything usageFrom reads (a provider response,
 * its usage object, tollgate's Usage). `requestCount` defaults to 1 with `usage`, else 0.
 */
function checkUsage(u, name) {
  if (u === null || typeof u !== 'object') throw invalidArg(`${name} must be an object, got ${v.describe(u)}`)
  const n = (k) => (u[k] === undefined ? 0 : v.integer(u[k], `${name}.${k}`, 0, MAX_LIMIT))
  if (u.usage !== undefined) {
    const r = usageFrom(u.usage)
    if (r === null) throw withCode(new TypeError(`${name}.usage carries no usage (give a provider response, its usage, or tollgate's Usage)`), codes.NO_USAGE)
    const requestCount = u.requestCount === undefined ? 1 : n('requestCount')
    return { requestCount, inputTokens: r.inputTokens, cachedTokens: r.cachedInputTokens, cacheWriteTokens: r.cacheWriteTokens, outputTokens: r.outputTokens }
  }
  const out = { requestCount: n('requestCount'), inputTokens: n('inputTokens'), cachedTokens: n('cachedTokens'), cacheWriteTokens: 0, outputTokens: n('outputTokens') }
  if (u.inputTokens === undefined && u.outputTokens === undefined) {
    throw withCode(new TypeError(`${name} carries no usage: give inputTokens and outputTokens, or usage (a provider response)`), codes.NO_USAGE)
  }
  if (out.cachedTokens > out.inputTokens) {
    throw outOfRange(`${name}.cachedTokens (${out.cachedTokens}) exceeds ${name}.inputTokens (${out.inputTokens}): inputTokens counts every input token, cached ones included`)
  }
  return out
}

// ---- the limiter -----------------------------------------------------------------------------

class LLMRateLimiter {
  #models
  #order
  #types
  #typeById
  #clock
  #ratioCfg
  #onAvail
  #onOverage
  #onLog
  #maxAttempts
  #local = null
  #redis = null
  #backend = null
  #queues
  #active = new Set()
  #memEnabled = false
  #memCfg
  #memTotalKB = 0
  #timers = new Set()
  #heartbeat = null
  #ratioTimer = null
  #memTimer = null
  /** Every interval timer the limiter needs runs, and the backend is started. */
  #timersReady = false
  #started = false
  #starting = null
  #releases = 0
  /** Ids of Redis grants and of queued counts, unique in this instance (jobs.lua). */
  #grantSeq = 0
  #lastAdjustment = null
  #totalSlots = 0
  #instanceId
  #allocation = null
  #global
  #lastAvailability = null
  #stopping = false
  #sliding = false
  /** Redis mode: what happens when Redis cannot answer (`onStoreError`), and its counters. */
  #fallback = null
  #policyStats = newStats()

  constructor(config) {
    const c = v.knownKeys(v.options(config, 'config'), CONFIG_KEYS, 'config')
    this.#models = readModels(c.models)
    const ids = this.#models.map((m) => m.id)
    const order = c.escalationOrder ?? c.order
    if (order === undefined) {
      if (ids.length > 1) throw invalidArg('escalationOrder is required when multiple models are configured')
      this.#order = [0]
    } else {
      if (!Array.isArray(order) || order.length === 0) throw invalidArg('config.escalationOrder must be a non-empty array of model ids')
      this.#order = order.map((id) => {
        const i = ids.indexOf(id)
        if (i < 0) throw outOfRange(`Model '${id}' in escalationOrder is not defined in models`, codes.UNKNOWN_MODEL)
        return i
      })
    }
    this.#types = readJobTypes(c.resourceEstimationsPerJob, ids)
    this.#typeById = new Map(this.#types.map((t) => [t.id, t]))
    const rc = {
      ...DEFAULT_RATIO_ADJUSTMENT_CONFIG,
      ...v.knownKeys(v.options(c.ratioAdjustmentConfig, 'config.ratioAdjustmentConfig'), Object.keys(DEFAULT_RATIO_ADJUSTMENT_CONFIG), 'config.ratioAdjustmentConfig'),
    }
    for (const k of Object.keys(DEFAULT_RATIO_ADJUSTMENT_CONFIG)) nonNegative(rc[k], `config.ratioAdjustmentConfig.${k}`)
    this.#ratioCfg = rc
    this.#onAvail = fnOrNull(c.onAvailableSlotsChange, 'config.onAvailableSlotsChange')
    this.#onOverage = fnOrNull(c.onOverage, 'config.onOverage')
    this.#onLog = fnOrNull(c.onLog, 'config.onLog')
    this.#maxAttempts = c.maxAttempts === undefined ? 2 * this.#order.length : v.integer(c.maxAttempts, 'config.maxAttempts', 1, 1000)
    if (c.now !== undefined) {
      v.fn(c.now, 'config.now')
      this.#clock = c.now
    } else {
      this.#clock = null
    }
    this.#instanceId = c.instanceId === undefined ? `inst-${Date.now()}-${randomBytes(6).toString('hex')}` : v.id(c.instanceId, 'config.instanceId')
    const flat = this.#models.flatMap((m) => m.limits)
    if (c.windows !== undefined && c.windows !== 'fixed' && c.windows !== 'sliding') {
      throw invalidArg(`config.windows must be 'fixed' or 'sliding', got ${v.describe(c.windows)}`)
    }
    this.#sliding = c.windows === 'sliding'
    this.#queues = this.#models.map(() => ({ waiters: [], draining: false, again: false, timer: null, timerAt: Infinity, blocked: false }))
    // Last known global counts per model (Redis mode): [mt, mr, dt, dr, inFlight, at].
    this.#global = this.#models.map(() => [0, 0, 0, 0, 0, 0])
    if (c.backend !== undefined && c.backend !== null) {
      if (!c.backend[kBackend]) throw invalidArg('config.backend must come from createRedisBackend()')
      this.#backend = c.backend
      this.#redis = new native.JobsRedisCore(c.backend.store[kNative], c.backend.keyPrefix, ids, flat, this.#instanceId, c.backend.instanceTimeoutMs, this.#sliding)
      const { policy, retryMs } = fallbackOptions(c, c.backend.store[kPolicy])
      // 'local': an in-process twin with the same limits decides while Redis is away. What a job
      // granted meanwhile used is added to the global windows once Redis is back (a settle with
      // no estimate and no concurrency slot to give back): at least once, never lost.
      // The twin starts from the last global counts this process saw (see #seed).
      const twin = () => this.#seed(new native.JobLimitsCore(flat, this.#sliding))
      // Queued: 'usage' of a job granted meanwhile (no slot; counted once by its id), and
      // 'release' of a grant whose release failed or whose acquire got no reply ('cancel': the
      // acquire may still run). Redis settles a grant once and refuses a late acquire, so sending
      // again after a lost reply counts nothing twice.
      const replay = (op) =>
        op.kind === 'usage'
          ? this.#redis.release(op.m, op.grant, 0, 0, op.tokens, op.requests, false, op.now, op.id)
          : this.#redis.release(op.m, op.grant, op.estTokens, op.estRequests, op.tokens, op.requests, true, op.now, op.id)
      this.#fallback = new StoreFallback(policy, twin, replay, this.#policyStats, retryMs)
      track('LLMRateLimiter', c.backend.keyPrefix, this.#policyStats)
    } else {
      this.#local = new native.JobLimitsCore(flat, this.#sliding)
    }
    this.#memCfg = v.knownKeys(v.options(c.memory, 'config.memory'), MEMORY_KEYS, 'config.memory')
    this.#memEnabled = this.#types.some((t) => t.memoryKB > 0)
    if (this.#memEnabled) this.#computeMemory()
    // Read now, not at the first queueJob (which must reject, never throw).
    if (this.#memEnabled && this.#memCfg.maxMemoryKB === undefined && this.#memCfg.recalculationIntervalMs !== undefined) {
      v.millis(this.#memCfg.recalculationIntervalMs, 'config.memory.recalculationIntervalMs', 3_600_000)
    }
    this.#computeSlots(null)
  }

  // ---- clock, logging, timers

  #now() {
    if (!this.#clock) return Date.now()
    const t = this.#clock()
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw outOfRange(`config.now() must return milliseconds, got ${v.describe(t)}`)
    return t
  }

  /** `now` for the native side: -1 for its own clock (Rust's, or the Redis server's). */
  #nativeNow() {
    return this.#clock ? this.#now() : -1
  }

  /** Runs a user's callback: one that throws is logged (with the job's id), never breaks a job. */
  #callUser(name, call, jobId) {
    try {
      call()
    } catch (e) {
      const error = String(e && e.message)
      this.#log(`${name} threw`, jobId === undefined ? { error } : { jobId, error })
    }
  }

  #log(message, data) {
    if (!this.#onLog) return
    try {
      this.#onLog(`LLMRateLimiter| ${message}`, data)
    } catch {
      // a logger that throws must not break a job
    }
  }

  /**
   * A timer of a waiting job (its maxWaitMS, or a queue's wake-up). It keeps the process
   * alive, as the awaited job does: it is bounded by maxWaitMS, cleared when the wait ends and
   * by stop(). Interval timers (heartbeat, ratios, memory) are unref'd instead.
   */
  #setTimer(fn, ms) {
    const t = setTimeout(() => {
      this.#timers.delete(t)
      fn()
    }, Math.max(0, Math.min(MAX_TIMER_MS, ms)))
    this.#timers.add(t)
    return t
  }

  #clearTimer(t) {
    if (t) {
      clearTimeout(t)
      this.#timers.delete(t)
    }
  }

  // ---- capacity layout: job-type slots, memory, ratios

  #computeMemory() {
    const o = this.#memCfg
    const ratio = o.freeMemoryRatio === undefined ? 0.8 : nonNegative(o.freeMemoryRatio, 'config.memory.freeMemoryRatio')
    const base = o.maxMemoryKB === undefined ? Math.floor(v8.getHeapStatistics().total_available_size / 1024) : v.integer(o.maxMemoryKB, 'config.memory.maxMemoryKB', 0, MAX_LIMIT)
    this.#memTotalKB = Math.floor(base * ratio)
    for (const t of this.#types) t.memCapKB = t.memoryKB > 0 ? Math.max(t.memoryKB, Math.floor(this.#memTotalKB * t.ratio)) : Infinity
  }

  /** Job-type slots from the total capacity (local: LLM Rate Limiter's per-type share; distributed: Σ pool slots). */
  #computeSlots(pools) {
    let total = 0
    if (pools) {
      for (const p of pools) total += p[0]
    } else {
      // One instance's pool per model (the distributed fair share with N = 1): the most jobs of average size its
      // limits admit at once; 100 for a model with no limits.
      for (const m of this.#models) total += native.jobPool(m.limits, [0, 0, 0, 0], 1, this.#averageEstimate())[0]
    }
    this.#totalSlots = total
    const min = this.#ratioCfg.minJobTypeCapacity
    for (const t of this.#types) {
      let slots = Math.max(min, Math.floor(total * t.ratio + 1e-9))
      if (this.#memEnabled && t.memoryKB > 0) slots = Math.max(min, Math.min(slots, Math.floor(t.memCapKB / t.memoryKB)))
      t.allocated = slots
    }
  }

  #averageEstimate() {
    const n = this.#types.length
    const avgT = Math.floor(this.#types.reduce((s, t) => s + t.tokens, 0) / n)
    const avgR = Math.floor(this.#types.reduce((s, t) => s + t.requests, 0) / n)
    return [avgT || 1, avgR || 1]
  }

  #adjustRatios() {
    const rc = this.#ratioCfg
    const loads = this.#types.map((t) => (t.allocated > 0 ? t.inFlight / t.allocated : 0))
    const next = native.jobAdjustRatios(
      this.#types.map((t) => t.ratio),
      this.#types.map((t) => t.flexible),
      loads,
      [rc.highLoadThreshold, rc.lowLoadThreshold, rc.maxAdjustment, rc.minRatio],
    )
    if (!next) return false
    this.#types.forEach((t, i) => (t.ratio = next[i]))
    this.#lastAdjustment = this.#now()
    if (this.#memEnabled) this.#computeMemory()
    this.#computeSlots(this.#allocation ? this.#allocation.poolList : null)
    this.#log('ratios adjusted', { ratios: Object.fromEntries(this.#types.map((t) => [t.id, t.ratio])) })
    this.#wakeAll()
    return true
  }

  /** Timers live only while the limiter is in use; stop() clears them. */
  #ensureTimers() {
    const rc = this.#ratioCfg
    if (!this.#ratioTimer && rc.adjustmentIntervalMs > 0 && this.#types.length > 1) {
      this.#ratioTimer = setInterval(() => this.#adjustRatios(), rc.adjustmentIntervalMs)
      this.#ratioTimer.unref?.()
    }
    const mc = this.#memCfg
    if (!this.#memTimer && this.#memEnabled && mc.maxMemoryKB === undefined) {
      const every = mc.recalculationIntervalMs === undefined ? 1000 : v.millis(mc.recalculationIntervalMs, 'config.memory.recalculationIntervalMs', 3_600_000)
      this.#memTimer = setInterval(() => {
        this.#computeMemory()
        this.#computeSlots(this.#allocation ? this.#allocation.poolList : null)
        this.#wakeAll()
      }, every)
      this.#memTimer.unref?.()
    }
    if (this.#redis && !this.#started && !this.#starting) this.start().catch(() => {})
    this.#timersReady =
      (this.#ratioTimer !== null || !(rc.adjustmentIntervalMs > 0 && this.#types.length > 1)) &&
      (this.#memTimer !== null || !(this.#memEnabled && mc.maxMemoryKB === undefined)) &&
      (!this.#redis || this.#started)
  }

  // ---- distributed: registration and heartbeat

  /** Registers with the backend and starts heartbeats. Without a backend it does nothing. */
  start() {
    this.#stopping = false
    if (!this.#redis || this.#started) return Promise.resolve()
    if (this.#starting) return this.#starting
    this.#stopping = false
    this.#starting = this.#beat(true).then(
      () => {
        this.#starting = null
        // stop() came meanwhile (and unregistered): no heartbeat, or it would register again.
        if (this.#stopping) return
        this.#started = true
        const every = this.#backend.heartbeatIntervalMs
        this.#heartbeat = setInterval(() => this.#beat(false).catch((e) => this.#log('heartbeat failed', { error: String(e && e.message) })), every)
        this.#heartbeat.unref?.()
      },
      (e) => {
        this.#starting = null
        throw e
      },
    )
    return this.#starting
  }

  async #beat(first) {
    let r
    try {
      r = await this.#redis.instanceOp('h', this.#nativeNow())
    } catch (e) {
      throw fromNative(e)
    }
    const [registered, instanceCount, dropped] = r
    if (registered && !first) this.#log('instance was dropped by the backend and registered again', { instanceId: this.#instanceId })
    if (dropped > 0) this.#log('stale instances removed', { dropped })
    const at = this.#now()
    this.#models.forEach((_, i) => {
      const g = this.#global[i]
      for (let k = 0; k < 5; k++) g[k] = r[3 + i * 5 + k]
      g[5] = at
    })
    this.#applyAllocation(instanceCount)
  }

  #applyAllocation(instanceCount) {
    const n = Math.max(1, instanceCount)
    const avg = this.#averageEstimate()
    const poolList = this.#models.map((m, i) => native.jobPool(m.limits, this.#global[i].slice(0, 4), n, avg))
    const pools = {}
    this.#models.forEach((m, i) => {
      const p = poolList[i]
      pools[m.id] = { totalSlots: p[0], tokensPerMinute: p[1], requestsPerMinute: p[2], tokensPerDay: p[3], requestsPerDay: p[4] }
    })
    const before = this.#allocation
    this.#allocation = { instanceCount: n, pools, poolList }
    this.#computeSlots(poolList)
    if (before && before.instanceCount !== n) this.#log('instance count changed', { from: before.instanceCount, to: n })
    this.#notifyAvailability('distributed', '*')
    this.#wakeAll()
  }

  /** Pushes usage counted while Redis was away (under 'fail-open' or 'local') to Redis now. */
  flush() {
    return flush(this.#fallback)
  }

  /** Clears timers, fails waiting jobs, unregisters from the backend. Safe to call twice. */
  stop() {
    this.#stopping = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    for (const q of this.#queues) {
      q.timer = null
      q.timerAt = Infinity
      const waiters = q.waiters.splice(0)
      for (const w of waiters) w.finish(jobError(codes.LIMITER_STOPPED, 'The limiter was stopped while the job waited for capacity'))
    }
    for (const t of [this.#heartbeat, this.#ratioTimer, this.#memTimer]) if (t) clearInterval(t)
    this.#heartbeat = this.#ratioTimer = this.#memTimer = null
    this.#timersReady = false
    const wasStarted = this.#started
    this.#started = false
    if (this.#redis && (wasStarted || this.#starting)) {
      return this.#redis.instanceOp('u', this.#nativeNow()).then(
        () => undefined,
        (e) => this.#log('unregister failed', { error: String(e && e.message) }),
      )
    }
    return Promise.resolve()
  }

  // ---- queueing

  /** Queues a job; resolves `{data, modelUsed}` or rejects (onError is called first). */
  queueJob(options) {
    if (this.#stopping) return Promise.reject(jobError(codes.LIMITER_STOPPED, 'The limiter was stopped: call start() before queueing jobs again'))
    let j
    try {
      j = this.#newJob(options)
    } catch (e) {
      return Promise.reject(e)
    }
    if (!this.#timersReady) this.#ensureTimers()
    return this.#run(j)
  }

  #newJob(options) {
    const o = v.options(options, 'options')
    const jobId = v.id(o.jobId, 'options.jobId')
    let type
    if (o.jobType === undefined && this.#types.length === 1) type = this.#types[0]
    else {
      type = this.#typeById.get(o.jobType)
      if (!type) {
        throw outOfRange(`Unknown job type '${o.jobType}'. Valid job types are: ${this.#types.map((t) => t.id).join(', ')}`)
      }
    }
    v.fn(o.job, 'options.job')
    const args = o.args === undefined || o.args === null ? null : v.options(o.args, 'options.args')
    return {
      jobId,
      type,
      fn: o.job,
      args,
      onComplete: fnOrNull(o.onComplete, 'options.onComplete'),
      onError: fnOrNull(o.onError, 'options.onError'),
      tried: new Set(),
      attempts: 0,
      usage: [],
      totalNano: 0,
      status: 'waiting-for-capacity',
      queuedAt: this.#now(),
      startedAt: null,
      currentModel: null,
      waitStartedAt: null,
      maxWaitMS: null,
    }
  }

  async #run(j) {
    this.#active.add(j)
    try {
      for (;;) {
        const g = await this.#select(j)
        const out = await this.#attempt(j, g)
        if (out !== null) return out
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e))
      if (j.onError) this.#callUser('onError', () => j.onError(err, this.#ctx(j)), j.jobId)
      throw err
    } finally {
      this.#active.delete(j)
    }
  }

  #ctx(j) {
    return { jobId: j.jobId, totalCost: j.totalNano === null ? null : toUsd(j.totalNano), usage: j.usage.slice() }
  }

  /** A grant on the first model (in order, skipping tried ones) that has room within its maxWaitMS. */
  async #select(j) {
    for (const m of this.#order) {
      if (j.tried.has(m)) continue
      const g = await this.#waitFor(j, m)
      if (g) return g
      j.tried.add(m)
    }
    throw jobError(codes.NO_CAPACITY, 'All models exhausted: no capacity available within maxWaitMS')
  }

  #maxWait(j, m) {
    const w = j.type.maxWait.get(m)
    return w === undefined ? getDefaultMaxWaitMS(this.#now()) : w
  }

  /** Waits on model `m`'s FIFO queue up to the job's maxWaitMS; a grant or null. */
  #waitFor(j, m) {
    const q = this.#queues[m]
    j.status = 'waiting-for-model'
    j.currentModel = m
    // Try at once unless a waiter is held back by the model itself (FIFO); waiters held back
    // only by their own job type or memory are not overtaken unfairly: they cannot run.
    if (!q.blocked) {
      if (this.#local) {
        const r = this.#tryLocal(j, m)
        if (r.grant !== undefined) return r
        if (r.never) return null
        return this.#enqueue(j, m, r)
      }
      return this.#tryRemote(j, m).then((r) => {
        if (r.grant !== undefined) return r
        if (r.never) return null
        return this.#enqueue(j, m, r)
      })
    }
    return this.#enqueue(j, m, null)
  }

  #enqueue(j, m, denial) {
    const maxWait = this.#maxWait(j, m)
    if (maxWait === 0) return null
    const q = this.#queues[m]
    return new Promise((resolve, reject) => {
      const w = {
        job: j,
        done: false,
        timer: null,
        finish: (r) => {
          if (w.done) return
          w.done = true
          this.#clearTimer(w.timer)
          if (r instanceof Error) reject(r)
          else resolve(r)
        },
      }
      j.waitStartedAt = this.#now()
      j.maxWaitMS = maxWait
      w.timer = this.#setTimer(() => {
        const i = q.waiters.indexOf(w)
        if (i >= 0) q.waiters.splice(i, 1)
        if (q.waiters.length === 0) this.#idle(q)
        w.finish(null)
      }, maxWait)
      q.waiters.push(w)
      if (denial && !denial.local) {
        q.blocked = true
        this.#schedule(m, denial.retryInMs)
      } else this.#drain(m)
    })
  }

  /** Wakes model `m`'s queue in `ms` (at the window reset), or polls Redis when only concurrency blocks. */
  #schedule(m, ms) {
    const q = this.#queues[m]
    let delay = ms
    if (this.#redis) delay = ms < 0 ? this.#backend.pollIntervalMs : Math.min(ms, this.#backend.pollIntervalMs)
    if (delay < 0) return // local concurrency: a release wakes the queue
    const at = Date.now() + delay
    if (q.timer && q.timerAt <= at) return
    this.#clearTimer(q.timer)
    q.timerAt = at
    q.timer = this.#setTimer(() => {
      q.timer = null
      q.timerAt = Infinity
      this.#drain(m)
    }, delay)
  }

  /** A queue with no waiters: nothing blocks it and no wake-up is pending. */
  #idle(q) {
    q.blocked = false
    this.#clearTimer(q.timer)
    q.timer = null
    q.timerAt = Infinity
  }

  #wakeAll() {
    for (let m = 0; m < this.#queues.length; m++) if (this.#queues[m].waiters.length) this.#drain(m)
  }

  /** Serves the queue head first; a waiter held back only by its own job type or memory is skipped. */
  #drain(m) {
    const q = this.#queues[m]
    if (q.draining) {
      q.again = true
      return
    }
    q.draining = true
    if (this.#local) {
      try {
        this.#drainLocal(m, q)
      } finally {
        q.draining = false
      }
      return
    }
    this.#drainRemote(m, q)
      .catch((e) => {
        const err = fromNative(e)
        // Redis failed: every waiter of this model fails with the store error.
        for (const w of q.waiters.splice(0)) w.finish(err)
        q.blocked = false
      })
      .finally(() => {
        q.draining = false
        if (q.again) {
          q.again = false
          if (q.waiters.length) this.#drain(m)
        }
      })
  }

  #drainLocal(m, q) {
    let i = 0
    let blocked = false
    while (i < q.waiters.length) {
      const step = this.#decide(m, q, i, this.#tryLocal(q.waiters[i].job, m))
      if (step < 0) {
        blocked = true
        break
      }
      i += step
    }
    q.blocked = blocked
    if (q.waiters.length === 0) this.#idle(q)
  }

  async #drainRemote(m, q) {
    do {
      q.again = false
      let i = 0
      let blocked = false
      while (i < q.waiters.length) {
        const w = q.waiters[i]
        const r = await this.#tryRemote(w.job, m)
        if (w.done) {
          // timed out meanwhile: hand the grant back
          if (r.grant !== undefined) await this.#release(r, w.job, { tokens: 0, requests: 0 }, true, false)
          const k = q.waiters.indexOf(w)
          if (k >= 0) q.waiters.splice(k, 1)
          continue
        }
        // The queue may have changed while Redis answered.
        const step = this.#decide(m, q, q.waiters.indexOf(w), r)
        if (step < 0) {
          blocked = true
          break
        }
        i += step
      }
      q.blocked = blocked
      if (q.waiters.length === 0) this.#idle(q)
    } while (q.again && q.waiters.length && !q.timer)
  }

  /**
   * Applies decision `r` to the waiter at `k` of model `m`'s queue: 0 when it left the queue
   * (granted, or it can never fit), 1 when it stays for a local slot (look at the next one), -1
   * when the model is blocked until `r.retryInMs` (a wake-up is scheduled).
   */
  #decide(m, q, k, r) {
    if (r.grant !== undefined || r.never) {
      const [w] = q.waiters.splice(k, 1)
      w.finish(r.never ? null : r)
      return 0
    }
    if (r.local) return 1
    this.#schedule(m, r.retryInMs)
    return -1
  }

  /** Local resources of the job's type: a job-type slot and its memory. */
  #takeLocal(t) {
    if (t.inFlight >= t.allocated) return false
    if (t.memoryKB > 0 && this.#memEnabled && t.memUsedKB + t.memoryKB > t.memCapKB) return false
    t.inFlight++
    t.memUsedKB += t.memoryKB
    return true
  }

  #giveLocal(t) {
    t.inFlight = Math.max(0, t.inFlight - 1)
    t.memUsedKB = Math.max(0, t.memUsedKB - t.memoryKB)
  }

  static #LOCAL = Object.freeze({ local: true })

  #tryLocal(j, m) {
    const t = j.type
    if (!this.#takeLocal(t)) return LLMRateLimiter.#LOCAL
    const r = this.#local.reserve(m, t.tokens, t.requests, this.#nativeNow())
    if (r >= 0) {
      t.inFlightByModel[m]++
      return { grant: r, model: m }
    }
    this.#giveLocal(t)
    if (r === -1) return { retryInMs: -1 }
    if (r === -2) return { never: true }
    return { retryInMs: -r - 3 }
  }

  async #tryRemote(j, m) {
    const t = j.type
    if (!this.#takeLocal(t)) return LLMRateLimiter.#LOCAL
    const outage = this.#fallback.skipping()
    if (outage !== null) return this.#tryFallback(outage, j, m, true)
    let r
    const id = ++this.#grantSeq
    const now = this.#nativeNow()
    try {
      this.#policyStats.redisCalls++
      r = await this.#redis.acquire(m, t.tokens, t.requests, now, id)
      this.#fallback.ok()
    } catch (e) {
      const err = fromNative(e)
      // No reply: the acquire may still run. Queue its cancellation (a release of the grant if
      // Redis made it, else a mark that refuses it when it arrives).
      if (StoreFallback.maybeSent(err)) this.#fallback.remember({ kind: 'cancel', m, id, grant: 0, estTokens: t.tokens, estRequests: t.requests, tokens: 0, requests: 0, now })
      return this.#tryFallback(err, j, m, false)
    }
    this.#policyStats.decisions++
    this.#remember(m, r)
    if (r[3] === 1 && this.#started) this.#log('instance registered again by acquire', { instanceId: this.#instanceId })
    if (r[0] === 1) {
      t.inFlightByModel[m]++
      return { grant: r[1], model: m, id }
    }
    this.#giveLocal(t)
    if (r[0] === 2) return { never: true }
    return { retryInMs: r[2] }
  }

  /**
   * Redis could not grant: the `onStoreError` policy decides ('fail-closed' rethrows). A grant
   * made here carries `fallback` and the time it was made, for its release.
   */
  async #tryFallback(err, j, m, skipped) {
    const t = j.type
    const now = this.#nativeNow()
    const at = now >= 0 ? now : Date.now()
    let g
    try {
      g = await this.#fallback.handle(
        err,
        () => ({ grant: 0, model: m, fallback: 'fail-open', at }),
        (twin) => {
          const r = twin.reserve(m, t.tokens, t.requests, now)
          return r >= 0 ? { grant: r, model: m, fallback: 'local', at } : { refused: r }
        },
        null,
        skipped,
        false,
      )
    } catch (e) {
      this.#giveLocal(t)
      throw e
    }
    this.#policyStats.decisions++
    if (g.refused !== undefined) {
      this.#giveLocal(t)
      const r = g.refused
      if (r === -1) return { retryInMs: -1 }
      if (r === -2) return { never: true }
      return { retryInMs: -r - 3 }
    }
    t.inFlightByModel[m]++
    return g
  }

  /**
   * 'local' starts from what this process last saw: per model, the global minute and day
   * counts and the jobs in flight, as of the Redis reply that carried them (counted at that
   * time: no earlier than the real ones, so they never leave the twin's windows sooner). The
   * day's count beyond the minute's goes a minute earlier, so only the day holds it.
   */
  #seed(core) {
    for (let m = 0; m < this.#global.length; m++) {
      const [mt, mr, dt, dr, inFlight, at] = this.#global[m]
      if (!(at > 0)) continue
      for (let i = 0; i < inFlight; i++) if (core.reserve(m, 0, 0, at) < 0) break
      const earlier = at - 60_000
      if ((dt > mt || dr > mr) && Math.floor(earlier / DAY_MS) === Math.floor(at / DAY_MS)) {
        core.settle(m, earlier, 0, 0, dt - mt, dr - mr, false, earlier)
      }
      if (mt > 0 || mr > 0) core.settle(m, at, 0, 0, mt, mr, false, at)
    }
    return core
  }

  #remember(m, r) {
    const g = this.#global[m]
    for (let k = 0; k < 5; k++) g[k] = r[4 + k]
    g[5] = this.#now()
  }

  // ---- running a job

  /** Runs one attempt; the job's result, or null to delegate to the next model. */
  async #attempt(j, g) {
    const m = g.model
    const model = this.#models[m]
    const t = j.type
    j.status = 'processing'
    j.startedAt = this.#now()
    j.currentModel = m
    j.attempts++
    this.#notifyAvailability('tokensMinute', model.id)
    let rejected = null
    const reject = (usage, opts) => {
      rejected = { usage, delegate: !(opts && opts.delegate === false) }
    }
    let result
    let error = null
    try {
      result = j.fn(j.args ? { ...j.args, modelId: model.id } : { modelId: model.id }, reject)
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') result = await result
    } catch (e) {
      error = e === undefined || e === null ? new Error(String(e)) : e
    }
    const est = { tokens: t.tokens, requests: t.requests }
    if (rejected) {
      let usage
      try {
        usage = checkUsage(rejected.usage, 'reject(usage)')
      } catch (e) {
        await this.#release(g, j, est, true, true)
        throw e
      }
      this.#account(j, model, usage)
      await this.#release(g, j, this.#actual(usage), false, true)
      if (!rejected.delegate) {
        throw jobError(codes.JOB_REJECTED, 'Job rejected without delegation', error ?? undefined)
      }
      if (j.attempts >= this.#maxAttempts) {
        throw jobError(codes.JOB_ATTEMPTS, `Job delegated ${j.attempts} times (maxAttempts ${this.#maxAttempts}) without a result`, error ?? undefined)
      }
      this.#log('job delegated', { jobId: j.jobId, modelId: model.id })
      j.tried.add(m)
      if (j.tried.size >= this.#order.length) j.tried.clear()
      j.status = 'waiting-for-capacity'
      j.currentModel = null
      return null
    }
    if (error) {
      // The call may have been made: the estimate stays counted.
      await this.#release(g, j, est, true, false)
      throw error instanceof Error ? error : new Error(String(error))
    }
    let usage
    try {
      if (result === null || typeof result !== 'object') throw invalidArg(`the job must return {requestCount, inputTokens, cachedTokens, outputTokens, data}, got ${v.describe(result)}`)
      usage = checkUsage(result, 'the job result')
    } catch (e) {
      await this.#release(g, j, est, true, false)
      throw e
    }
    this.#account(j, model, usage)
    await this.#release(g, j, this.#actual(usage), false, true)
    const out = { data: result.data, modelUsed: model.id }
    if (j.onComplete) this.#callUser('onComplete', () => j.onComplete(out, this.#ctx(j)), j.jobId)
    return out
  }

  #actual(u) {
    return { tokens: u.inputTokens + u.outputTokens, requests: u.requestCount }
  }

  /** Prices an attempt as costOf does (integer nano-dollars); null on a model with no price. */
  #account(j, model, u) {
    const nano = model.price === null ? null : native.costNanoOfUsage([u.inputTokens, u.cachedTokens, u.cacheWriteTokens, u.outputTokens], model.price, false)
    const { cacheWriteTokens, ...entry } = u
    j.usage.push({ modelId: model.id, ...entry, cost: nano === null ? null : toUsd(nano) })
    if (nano === null || j.totalNano === null) j.totalNano = null
    else j.totalNano += nano
  }

  /** Settles a grant with `actual` (window-aware) and gives every resource back. */
  async #release(g, j, actual, keepEstimate, report) {
    const m = g.model
    const t = j.type
    const now = this.#nativeNow()
    if (report && this.#onOverage) {
      const at = this.#now()
      if (actual.tokens > t.tokens) this.#overage('tokens', t.tokens, actual.tokens, at)
      if (actual.requests > t.requests) this.#overage('requests', t.requests, actual.requests, at)
    }
    if (this.#local) {
      this.#local.settle(m, g.grant, t.tokens, t.requests, actual.tokens, actual.requests, true, now)
    } else if (g.fallback !== undefined) {
      // Granted while Redis was away: settle the twin, and add the usage to Redis's windows
      // (in the minute the job started) once Redis is back.
      if (g.fallback === 'local') this.#fallback.local().settle(m, g.grant, t.tokens, t.requests, actual.tokens, actual.requests, true, now)
      const grant = this.#sliding ? g.at : g.at - (g.at % 60_000)
      this.#fallback.remember({ kind: 'usage', m, id: ++this.#grantSeq, grant, tokens: actual.tokens, requests: actual.requests, now })
      this.#fallback.kick()
    } else {
      const op = { kind: 'release', m, id: g.id, grant: g.grant, estTokens: t.tokens, estRequests: t.requests, tokens: actual.tokens, requests: actual.requests, now }
      if (this.#fallback.skipping() !== null) {
        // Redis is known to be away: queue it rather than wait out a timeout.
        this.#fallback.remember(op)
      } else {
        try {
          this.#policyStats.redisCalls++
          const r = await this.#redis.release(m, g.grant, t.tokens, t.requests, actual.tokens, actual.requests, true, now, g.id)
          this.#fallback.ok()
          this.#remember(m, r)
        } catch (e) {
          // Sent again until Redis answers; it settles once (jobs.lua).
          this.#fallback.failed(fromNative(e))
          this.#fallback.remember(op)
          this.#log('release failed; queued to be sent again', { jobId: j.jobId, modelId: this.#models[m].id, error: String(e && e.message) })
        }
      }
    }
    t.inFlightByModel[m] = Math.max(0, t.inFlightByModel[m] - 1)
    this.#giveLocal(t)
    if (report && !keepEstimate && this.#onAvail && (actual.tokens !== t.tokens || actual.requests !== t.requests)) {
      const d = { tokensPerMinute: actual.tokens - t.tokens, tokensPerDay: actual.tokens - t.tokens, requestsPerMinute: actual.requests - t.requests, requestsPerDay: actual.requests - t.requests, memoryKB: 0, concurrentRequests: 0 }
      this.#notifyAvailability('adjustment', this.#models[m].id, d, true)
    } else this.#notifyAvailability(null, this.#models[m].id)
    const rpa = this.#ratioCfg.releasesPerAdjustment
    if (rpa > 0 && ++this.#releases % rpa === 0) this.#adjustRatios()
    this.#wakeAll()
  }

  #overage(resourceType, estimated, actual, timestamp) {
    this.#callUser('onOverage', () => this.#onOverage({ resourceType, estimated, actual, overage: actual - estimated, timestamp }))
  }

  // ---- availability

  #counts(m) {
    if (this.#local) return this.#local.counts(m, this.#nativeNow())
    const g = this.#global[m]
    // Last known global counts, rolled to the current windows.
    const now = this.#now()
    if (this.#sliding) return [g[0], g[1], g[2], g[3], g[4], now, 60000, 86400000]
    const sameMinute = Math.floor(g[5] / 60000) === Math.floor(now / 60000)
    const sameDay = Math.floor(g[5] / 86400000) === Math.floor(now / 86400000)
    return [sameMinute ? g[0] : 0, sameMinute ? g[1] : 0, sameDay ? g[2] : 0, sameDay ? g[3] : 0, g[4], now, 60000 - (now % 60000), 86400000 - (now % 86400000)]
  }

  #availability() {
    const dims = { tokensPerMinute: null, tokensPerDay: null, requestsPerMinute: null, requestsPerDay: null, concurrentRequests: null }
    const min = (k, x) => (dims[k] = dims[k] === null ? x : Math.min(dims[k], x))
    this.#models.forEach((model, i) => {
      const [tpm, rpm, tpd, rpd, conc] = model.limits
      const c = this.#counts(i)
      if (tpm) min('tokensPerMinute', Math.max(0, tpm - c[0]))
      if (rpm) min('requestsPerMinute', Math.max(0, rpm - c[1]))
      if (tpd) min('tokensPerDay', Math.max(0, tpd - c[2]))
      if (rpd) min('requestsPerDay', Math.max(0, rpd - c[3]))
      if (conc) min('concurrentRequests', Math.max(0, conc - c[4]))
    })
    let memoryKB = null
    if (this.#memEnabled) memoryKB = this.#types.reduce((s, t) => s + (t.memoryKB > 0 ? Math.max(0, t.memCapKB - t.memUsedKB) : 0), 0)
    let slots
    if (this.#allocation) slots = this.#allocation.poolList.reduce((s, p) => s + p[0], 0)
    else {
      const estT = Math.max(...this.#types.map((t) => t.tokens))
      const estR = Math.max(...this.#types.map((t) => t.requests))
      const estM = Math.max(...this.#types.map((t) => t.memoryKB))
      slots = Infinity
      const by = (rem, e) => rem !== null && e > 0 && (slots = Math.min(slots, Math.floor(rem / e)))
      by(dims.tokensPerMinute, estT)
      by(dims.tokensPerDay, estT)
      by(dims.requestsPerMinute, estR)
      by(dims.requestsPerDay, estR)
      if (dims.concurrentRequests !== null) slots = Math.min(slots, dims.concurrentRequests)
      by(memoryKB, estM)
    }
    return { slots, ...dims, memoryKB }
  }

  #notifyAvailability(hint, modelId, adjustment, force) {
    if (!this.#onAvail) return
    const a = this.#availability()
    const prev = this.#lastAvailability
    this.#lastAvailability = a
    let reason = hint
    if (!force) {
      if (prev) {
        const order = [
          ['tokensPerMinute', 'tokensMinute'],
          ['tokensPerDay', 'tokensDay'],
          ['requestsPerMinute', 'requestsMinute'],
          ['requestsPerDay', 'requestsDay'],
          ['concurrentRequests', 'concurrentRequests'],
        ]
        const changed = order.find(([k]) => prev[k] !== a[k])
        if (!changed && prev.memoryKB === a.memoryKB && prev.slots === a.slots) return
        if (hint !== 'distributed') reason = changed ? changed[1] : 'memory'
      } else if (hint === null) reason = 'tokensMinute'
    }
    this.#callUser('onAvailableSlotsChange', () => this.#onAvail(a, reason, modelId, adjustment))
  }

  // ---- introspection

  #modelIndex(modelId) {
    v.id(modelId, 'modelId')
    const i = this.#models.findIndex((m) => m.id === modelId)
    if (i < 0) throw outOfRange(`Unknown model: ${modelId}`, codes.UNKNOWN_MODEL)
    return i
  }

  /** Could a job of some type start on `modelId` now (its limits, and a free job-type slot)? */
  hasCapacityForModel(modelId) {
    const i = this.#modelIndex(modelId)
    const [tpm, rpm, tpd, rpd, conc] = this.#models[i].limits
    const c = this.#counts(i)
    const room = (limit, count, est) => limit === 0 || (count < limit && count + est <= limit)
    if (conc && c[4] >= conc) return false
    return this.#types.some(
      (t) => t.inFlight < t.allocated && room(tpm, c[0], t.tokens) && room(rpm, c[1], t.requests) && room(tpd, c[2], t.tokens) && room(rpd, c[3], t.requests),
    )
  }

  hasCapacity() {
    return this.getAvailableModel() !== null
  }

  getAvailableModel() {
    for (const m of this.#order) if (this.hasCapacityForModel(this.#models[m].id)) return this.#models[m].id
    return null
  }

  hasCapacityForJobType(jobType) {
    const t = this.#typeById.get(jobType)
    if (!t) throw outOfRange(`Unknown job type '${jobType}'`)
    return t.inFlight < t.allocated
  }

  getModelStats(modelId) {
    return this.#modelStats(this.#modelIndex(modelId))
  }

  #modelStats(i) {
    const [tpm, rpm, tpd, rpd, conc] = this.#models[i].limits
    const c = this.#counts(i)
    const minuteLeft = c[6]
    const dayLeft = c[7]
    const s = {}
    const counter = (limit, current, resetsInMs) => ({ current, limit, remaining: Math.max(0, limit - current), resetsInMs })
    if (conc) s.concurrency = { active: c[4], limit: conc, available: Math.max(0, conc - c[4]), waiting: this.#queues[i].waiters.length }
    if (rpm) s.requestsPerMinute = counter(rpm, c[1], minuteLeft)
    if (rpd) s.requestsPerDay = counter(rpd, c[3], dayLeft)
    if (tpm) s.tokensPerMinute = counter(tpm, c[0], minuteLeft)
    if (tpd) s.tokensPerDay = counter(tpd, c[2], dayLeft)
    if (this.#memEnabled) s.memory = this.#memoryStats()
    return s
  }

  #memoryStats() {
    const used = this.#types.reduce((sum, t) => sum + t.memUsedKB, 0)
    return {
      activeKB: used,
      maxCapacityKB: this.#memTotalKB,
      availableKB: Math.max(0, this.#memTotalKB - used),
      systemAvailableKB: Math.floor(v8.getHeapStatistics().total_available_size / 1024),
    }
  }

  getStats() {
    const models = {}
    this.#models.forEach((m, i) => (models[m.id] = this.#modelStats(i)))
    const s = { models, jobTypes: this.getJobTypeStats() }
    if (this.#memEnabled) s.memory = this.#memoryStats()
    if (this.#fallback) s.store = snapshot(this.#policyStats, this.#fallback)
    return s
  }

  getJobTypeStats() {
    const jobTypes = {}
    for (const t of this.#types) {
      const resources = {}
      if (t.requests) resources.estimatedNumberOfRequests = t.requests
      if (t.tokens) resources.estimatedUsedTokens = t.tokens
      if (t.memoryKB) resources.estimatedUsedMemoryKB = t.memoryKB
      jobTypes[t.id] = { currentRatio: t.ratio, initialRatio: t.initialRatio, flexible: t.flexible, inFlight: t.inFlight, allocatedSlots: t.allocated, resources }
    }
    const s = { jobTypes, totalSlots: this.#totalSlots, lastAdjustmentTime: this.#lastAdjustment }
    if (this.#allocation) {
      const min = this.#ratioCfg.minJobTypeCapacity
      s.modelJobTypes = {}
      this.#models.forEach((m, i) => {
        const byType = (s.modelJobTypes[m.id] = {})
        for (const t of this.#types) {
          byType[t.id] = { allocated: native.jobModelTypeSlots(this.#allocation.poolList[i], t.ratio, t.tokens, t.requests, min), inFlight: t.inFlightByModel[i] }
        }
      })
    }
    return s
  }

  getActiveJobs() {
    return [...this.#active].map((j) => ({
      jobId: j.jobId,
      jobType: j.type.id,
      status: j.status,
      queuedAt: j.queuedAt,
      startedAt: j.startedAt,
      currentModelId: j.currentModel === null ? null : this.#models[j.currentModel].id,
      triedModels: [...j.tried].map((m) => this.#models[m].id),
      waitStartedAt: j.waitStartedAt,
      maxWaitMS: j.maxWaitMS,
      timeoutAt: j.waitStartedAt !== null && j.maxWaitMS !== null ? j.waitStartedAt + j.maxWaitMS : null,
    }))
  }

  /** The fair share per instance from the last heartbeat (distributed mode), or null. */
  getAllocation() {
    if (!this.#allocation) return null
    return { instanceCount: this.#allocation.instanceCount, pools: structuredClone(this.#allocation.pools) }
  }

  getInstanceId() {
    return this.#instanceId
  }
}

function createLLMRateLimiter(config) {
  return new LLMRateLimiter(config)
}

module.exports = { createLLMRateLimiter, createRedisBackend, getDefaultMaxWaitMS, DEFAULT_RATIO_ADJUSTMENT_CONFIG, LLMRateLimiter }
