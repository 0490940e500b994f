'use strict'
// The job limiter's configuration: createLLMRateLimiter's options read, validated and given
// their defaults, once, at construction. What comes out is plain data (models with their limits
// and prices, the escalation order, job-type specs with their initial ratios, the ratio and
// memory settings, the callbacks, the clock); nothing here holds state or talks to a store.
// Option names follow LLM Rate Limiter's, so its users' configs carry over.

const { randomBytes } = require('node:crypto')
const native = require('../native')
const { codes, invalidArg, outOfRange } = require('../errors')
const { fallbackOptions } = require('../policy')
const { kPolicy } = require('../stores')
const v = require('../validate')
const { kBackend } = require('./backend-redis')

const MAX_LIMIT = Number.MAX_SAFE_INTEGER
/** setTimeout's longest delay; longer maxWaitMS values are capped here (24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1
/** A model's limits, in this order everywhere (the native cores take them flat, 5 per model). */
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

/** The default patience on a model: until the next minute, plus 5 s (6–65 s). */
function getDefaultMaxWaitMS(now = Date.now()) {
  return native.jobDefaultMaxWaitMs(now)
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

/**
 * Every option of createLLMRateLimiter, checked in a fixed order (so a config with several
 * mistakes always reports the same one first).
 */
function readConfig(config) {
  const c = v.knownKeys(v.options(config, 'config'), CONFIG_KEYS, 'config')
  const models = readModels(c.models)
  const ids = models.map((m) => m.id)
  const order = readOrder(c.escalationOrder ?? c.order, ids)
  const types = readJobTypes(c.resourceEstimationsPerJob, ids)
  const ratio = {
    ...DEFAULT_RATIO_ADJUSTMENT_CONFIG,
    ...v.knownKeys(v.options(c.ratioAdjustmentConfig, 'config.ratioAdjustmentConfig'), Object.keys(DEFAULT_RATIO_ADJUSTMENT_CONFIG), 'config.ratioAdjustmentConfig'),
  }
  for (const k of Object.keys(DEFAULT_RATIO_ADJUSTMENT_CONFIG)) nonNegative(ratio[k], `config.ratioAdjustmentConfig.${k}`)
  const onAvailableSlotsChange = fnOrNull(c.onAvailableSlotsChange, 'config.onAvailableSlotsChange')
  const onOverage = fnOrNull(c.onOverage, 'config.onOverage')
  const onLog = fnOrNull(c.onLog, 'config.onLog')
  const maxAttempts = c.maxAttempts === undefined ? 2 * order.length : v.integer(c.maxAttempts, 'config.maxAttempts', 1, 1000)
  const clock = makeClock(c.now === undefined ? null : v.fn(c.now, 'config.now'))
  const instanceId = c.instanceId === undefined ? `inst-${Date.now()}-${randomBytes(6).toString('hex')}` : v.id(c.instanceId, 'config.instanceId')
  if (c.windows !== undefined && c.windows !== 'fixed' && c.windows !== 'sliding') {
    throw invalidArg(`config.windows must be 'fixed' or 'sliding', got ${v.describe(c.windows)}`)
  }
  const sliding = c.windows === 'sliding'
  let backend = null
  let policy = null
  if (c.backend !== undefined && c.backend !== null) {
    if (!c.backend[kBackend]) throw invalidArg('config.backend must come from createRedisBackend()')
    backend = c.backend
    // onStoreError / storeRetryMs matter only with Redis (in-process limits cannot fail).
    policy = fallbackOptions(c, c.backend.store[kPolicy])
  }
  const memory = readMemory(c.memory, types)
  return {
    models,
    /** Model ids, by index: everything below names a model by its index. */
    ids,
    /** The limits of every model, flat (5 per model, LIMIT_FIELDS order), for the native cores. */
    limits: models.flatMap((m) => m.limits),
    order,
    types,
    ratio,
    memory,
    onAvailableSlotsChange,
    onOverage,
    onLog,
    maxAttempts,
    clock,
    instanceId,
    sliding,
    backend,
    policy,
  }
}

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

/** The escalation order as model indexes; optional with a single model. */
function readOrder(order, ids) {
  if (order === undefined) {
    if (ids.length > 1) throw invalidArg('escalationOrder is required when multiple models are configured')
    return [0]
  }
  if (!Array.isArray(order) || order.length === 0) throw invalidArg('config.escalationOrder must be a non-empty array of model ids')
  return order.map((id) => {
    const i = ids.indexOf(id)
    if (i < 0) throw outOfRange(`Model '${id}' in escalationOrder is not defined in models`, codes.UNKNOWN_MODEL)
    return i
  })
}

/**
 * Job types (`resourceEstimationsPerJob`; one type `default` without it): their estimates,
 * per-model patience (`maxWait`: model index → ms) and initial ratio. Types with a
 * `ratio.initialValue` keep it (scaled to sum 1 when every type has one), the others share the
 * rest evenly.
 */
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
      initialRatio: 0,
      maxWait,
    }
  })
  const specified = types.filter((t) => t.initial !== null)
  const sum = specified.reduce((s, t) => s + t.initial, 0)
  if (sum > 1 + 1e-4) throw outOfRange(`Sum of specified ratio.initialValue values exceeds 1. Got: ${sum}`)
  const rest = types.length - specified.length
  for (const t of types) {
    if (t.initial !== null) t.initialRatio = rest === 0 && sum > 0 ? t.initial / sum : t.initial
    else t.initialRatio = (1 - sum) / rest
  }
  return types
}

/**
 * `memory`: counted only when some job type estimates its memory (`estimatedUsedMemoryKB`);
 * then the budget is `freeMemoryRatio` (0.8) of `maxMemoryKB`, or of the V8 heap still
 * available, measured again every `recalculationIntervalMs` (1 s).
 */
function readMemory(memory, types) {
  const o = v.knownKeys(v.options(memory, 'config.memory'), MEMORY_KEYS, 'config.memory')
  const enabled = types.some((t) => t.memoryKB > 0)
  if (!enabled) return { enabled, freeRatio: 0.8, maxKB: null, everyMs: 0 }
  const freeRatio = o.freeMemoryRatio === undefined ? 0.8 : nonNegative(o.freeMemoryRatio, 'config.memory.freeMemoryRatio')
  /** A fixed budget base, or null to follow the heap (measured again every `everyMs`). */
  const maxKB = o.maxMemoryKB === undefined ? null : v.integer(o.maxMemoryKB, 'config.memory.maxMemoryKB', 0, MAX_LIMIT)
  let everyMs = 0
  if (maxKB === null) everyMs = o.recalculationIntervalMs === undefined ? 1000 : v.millis(o.recalculationIntervalMs, 'config.memory.recalculationIntervalMs', 3_600_000)
  return { enabled, freeRatio, maxKB, everyMs }
}

/**
 * The limiter's clock: `now()` in ms (config.now, checked on every read, else Date.now), and
 * `nativeNow()`, the same for the native side, where -1 means "use your own clock" (Rust's, or
 * the Redis server's).
 */
function makeClock(fn) {
  if (fn === null) return { now: Date.now, nativeNow: () => -1 }
  const now = () => {
    const t = fn()
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw outOfRange(`config.now() must return milliseconds, got ${v.describe(t)}`)
    return t
  }
  return { now, nativeNow: now }
}

module.exports = { readConfig, getDefaultMaxWaitMS, DEFAULT_RATIO_ADJUSTMENT_CONFIG, MAX_LIMIT, MAX_TIMER_MS, fnOrNull }
