'use strict'
// createLLMRateLimiter (LLM Rate Limiter's API): queue LLM jobs over several models with
// per-model limits, fall back along an escalation order, reserve estimates and settle real
// usage, track cost; optionally share every model's limits across processes with
// createRedisBackend. This file is the limiter itself: a job's way through it (queueJob → a
// model with room → the attempt → the release), its lifecycle, and what it reports.
//
// The parts, one concept each:
//   config.js         the options: validated, with their defaults
//   capacity.js       what may run at once here: job-type slots, ratios, memory, the fair share;
//                     per-model limits against counts
//   queue.js          a model's FIFO queue: waiting, wake-ups, the one drain loop
//   job.js            a job's record, the usage it reports, its cost
//   backend-local.js  the limits counted in this process
//   backend-redis.js  the limits shared through Redis, and the store-failure policy
//
// A backend (where a model's limits are counted) answers:
//   acquire(m, type)     a decision, or a promise of one: `{grant, model, …}` (what it needs at
//                        release), `{never: true}` (the estimate can never fit), or
//                        `{retryInMs}` (refused; -1: until a job ends)
//   release(grant, type, actual, now, jobId)
//                        settles a grant with the usage; a promise only while it waits for a store
//   counts(m)            [minute tokens, minute requests, day tokens, day requests, in flight,
//                        now, ms to the minute's end, ms to the day's end]
//   wakeDelay(retryInMs) when a refused queue tries again (< 0: when a job ends)
//   start() stop() flush() started storeStats()
// The limit maths itself is engine/jobs.rs (the jobLimits* functions in process, jobs.lua on Redis).

const { codes, invalidArg, outOfRange } = require('../errors')
const v = require('../validate')
const { readConfig, getDefaultMaxWaitMS, DEFAULT_RATIO_ADJUSTMENT_CONFIG } = require('./config')
const { Capacity } = require('./capacity')
const { ModelQueue } = require('./queue')
const { jobError, newJob, checkUsage, actualOf, account, contextOf } = require('./job')
const { LocalBackend } = require('./backend-local')
const { RedisBackend, createRedisBackend } = require('./backend-redis')

/** A waiter held back by its own job type or memory (a resource of this process, not the model's). */
const HELD = Object.freeze({ held: true })
const NOTHING_USED = Object.freeze({ tokens: 0, requests: 0 })

class LLMRateLimiter {
  #models
  #order
  #clock
  #ratioCfg
  #memCfg
  #onAvail
  #onOverage
  #onLog
  #maxAttempts
  #instanceId
  #capacity
  #backend
  #queues
  #active = new Set()
  #ratioTimer = null
  #memTimer = null
  /** The interval timers the limiter needs run, and the backend is started (queueJob need not check). */
  #timersReady = false
  #stopping = false
  #releases = 0
  #lastAvailability = null

  constructor(config) {
    const cfg = readConfig(config)
    this.#models = cfg.models
    this.#order = cfg.order
    this.#clock = cfg.clock
    this.#ratioCfg = cfg.ratio
    this.#memCfg = cfg.memory
    this.#onAvail = cfg.onAvailableSlotsChange
    this.#onOverage = cfg.onOverage
    this.#onLog = cfg.onLog
    this.#maxAttempts = cfg.maxAttempts
    this.#instanceId = cfg.instanceId
    this.#queues = cfg.models.map(
      (_, m) =>
        new ModelQueue(
          (job) => this.#tryGrant(job, m),
          (g, job) => this.#release(g, job, NOTHING_USED, true, false),
          (retryInMs) => this.#backend.wakeDelay(retryInMs),
        ),
    )
    this.#backend =
      cfg.backend === null
        ? new LocalBackend(cfg)
        : new RedisBackend(cfg, { log: (message, data) => this.#log(message, data), allocate: (n, counts) => this.#applyAllocation(n, counts) })
    this.#capacity = new Capacity(cfg)
  }

  // ---- logging and user callbacks

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

  // ---- lifecycle

  /** Starts the interval timers (ratios, memory) and the backend, once the limiter is in use; stop() clears them. */
  #ensureTimers() {
    const rc = this.#ratioCfg
    const needRatio = rc.adjustmentIntervalMs > 0 && this.#capacity.types.length > 1
    if (!this.#ratioTimer && needRatio) {
      this.#ratioTimer = setInterval(() => this.#adjustRatios(), rc.adjustmentIntervalMs)
      this.#ratioTimer.unref?.()
    }
    const mc = this.#memCfg
    const needMemory = mc.enabled && mc.maxKB === null
    if (!this.#memTimer && needMemory) {
      this.#memTimer = setInterval(() => {
        this.#capacity.recomputeMemory()
        this.#wakeAll()
      }, mc.everyMs)
      this.#memTimer.unref?.()
    }
    // Until the backend has started (registered with Redis), every job asks again.
    if (!this.#backend.started) this.#backend.start().catch(() => {})
    this.#timersReady = this.#backend.started
  }

  /** Registers with the backend and starts heartbeats. Without a backend it does nothing. */
  start() {
    this.#stopping = false
    return this.#backend.start()
  }

  /** Pushes usage counted while Redis was away (under 'fail-open' or 'local') to Redis now. */
  flush() {
    return this.#backend.flush()
  }

  /** Clears timers, fails waiting jobs, unregisters from the backend. Safe to call twice. */
  stop() {
    this.#stopping = true
    for (const q of this.#queues) q.stop(() => jobError(codes.LIMITER_STOPPED, 'The limiter was stopped while the job waited for capacity'))
    for (const t of [this.#ratioTimer, this.#memTimer]) if (t) clearInterval(t)
    this.#ratioTimer = this.#memTimer = null
    this.#timersReady = false
    return this.#backend.stop()
  }

  // ---- capacity changes

  #adjustRatios() {
    const ratios = this.#capacity.adjustRatios(this.#clock.now)
    if (ratios === null) return false
    this.#log('ratios adjusted', { ratios })
    this.#wakeAll()
    return true
  }

  /** After a heartbeat: this instance's share among `instanceCount`, from the global `counts`. */
  #applyAllocation(instanceCount, counts) {
    const before = this.#capacity.allocate(instanceCount, counts)
    const n = this.#capacity.allocation.instanceCount
    if (before !== null && before !== n) this.#log('instance count changed', { from: before, to: n })
    this.#notifyAvailability('distributed', '*')
    this.#wakeAll()
  }

  #wakeAll() {
    for (const q of this.#queues) q.wake()
  }

  // ---- a job's way: a model with room, the attempt, the release

  /** Queues a job; resolves `{data, modelUsed}` or rejects (onError is called first). */
  queueJob(options) {
    if (this.#stopping) return Promise.reject(jobError(codes.LIMITER_STOPPED, 'The limiter was stopped: call start() before queueing jobs again'))
    let j
    try {
      j = newJob(options, this.#capacity, this.#clock.now)
    } catch (e) {
      return Promise.reject(e)
    }
    if (!this.#timersReady) this.#ensureTimers()
    return this.#run(j)
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
      if (j.onError) this.#callUser('onError', () => j.onError(err, contextOf(j)), j.jobId)
      throw err
    } finally {
      this.#active.delete(j)
    }
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

  /** A grant on model `m`, at once or after waiting in its queue up to the job's maxWaitMS; or null. */
  #waitFor(j, m) {
    j.status = 'waiting-for-model'
    j.currentModel = m
    // Try at once unless a waiter is held back by the model itself (FIFO); waiters held back
    // only by their own job type or memory are not overtaken unfairly: they cannot run.
    if (this.#queues[m].blocked) return this.#enqueue(j, m, null)
    const r = this.#tryGrant(j, m)
    return r instanceof Promise ? r.then((d) => this.#grantedOrWait(j, m, d)) : this.#grantedOrWait(j, m, r)
  }

  #grantedOrWait(j, m, r) {
    if (r.grant !== undefined) return r
    if (r.never) return null
    return this.#enqueue(j, m, r)
  }

  #enqueue(j, m, denial) {
    const w = j.type.maxWait.get(m)
    const maxWait = w === undefined ? getDefaultMaxWaitMS(this.#clock.now()) : w
    if (maxWait === 0) return null
    j.waitStartedAt = this.#clock.now()
    j.maxWaitMS = maxWait
    return this.#queues[m].wait(j, maxWait, denial)
  }

  /** Asks for room on model `m`: a slot of the job's type here, then the model's limits (the backend). */
  #tryGrant(j, m) {
    const t = j.type
    if (!this.#capacity.take(t)) return HELD
    let r
    try {
      r = this.#backend.acquire(m, t)
    } catch (e) {
      this.#capacity.give(t)
      throw e
    }
    if (r instanceof Promise) {
      return r.then(
        (d) => this.#took(t, m, d),
        (e) => {
          this.#capacity.give(t)
          throw e
        },
      )
    }
    return this.#took(t, m, r)
  }

  #took(t, m, d) {
    if (d.grant !== undefined) t.inFlightByModel[m]++
    else this.#capacity.give(t)
    return d
  }

  /** Runs one attempt; the job's result, or null to delegate to the next model. */
  async #attempt(j, g) {
    const m = g.model
    const model = this.#models[m]
    const t = j.type
    j.status = 'processing'
    j.startedAt = this.#clock.now()
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
      account(j, model, usage)
      await this.#release(g, j, actualOf(usage), false, true)
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
    account(j, model, usage)
    await this.#release(g, j, actualOf(usage), false, true)
    const out = { data: result.data, modelUsed: model.id }
    if (j.onComplete) this.#callUser('onComplete', () => j.onComplete(out, contextOf(j)), j.jobId)
    return out
  }

  /** Settles a grant with `actual` (window-aware) and gives every resource back. */
  async #release(g, j, actual, keepEstimate, report) {
    const m = g.model
    const t = j.type
    const now = this.#clock.nativeNow()
    if (report && this.#onOverage) {
      const at = this.#clock.now()
      if (actual.tokens > t.tokens) this.#overage('tokens', t.tokens, actual.tokens, at)
      if (actual.requests > t.requests) this.#overage('requests', t.requests, actual.requests, at)
    }
    const sent = this.#backend.release(g, t, actual, now, j.jobId)
    if (sent !== undefined) await sent
    t.inFlightByModel[m] = Math.max(0, t.inFlightByModel[m] - 1)
    this.#capacity.give(t)
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

  #notifyAvailability(hint, modelId, adjustment, force) {
    if (!this.#onAvail) return
    const a = this.#capacity.availability((m) => this.#backend.counts(m))
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
    return this.#capacity.hasRoom(i, this.#backend.counts(i))
  }

  hasCapacity() {
    return this.getAvailableModel() !== null
  }

  getAvailableModel() {
    for (const m of this.#order) if (this.hasCapacityForModel(this.#models[m].id)) return this.#models[m].id
    return null
  }

  hasCapacityForJobType(jobType) {
    const t = this.#capacity.typeById(jobType)
    if (!t) throw outOfRange(`Unknown job type '${jobType}'`)
    return t.inFlight < t.allocated
  }

  getModelStats(modelId) {
    return this.#modelStats(this.#modelIndex(modelId))
  }

  #modelStats(i) {
    return this.#capacity.modelStats(i, this.#backend.counts(i), this.#queues[i].waiting)
  }

  getStats() {
    const models = {}
    this.#models.forEach((m, i) => (models[m.id] = this.#modelStats(i)))
    const s = { models, jobTypes: this.getJobTypeStats() }
    if (this.#capacity.memEnabled) s.memory = this.#capacity.memoryStats()
    const store = this.#backend.storeStats()
    if (store !== undefined) s.store = store
    return s
  }

  getJobTypeStats() {
    return this.#capacity.jobTypeStats()
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
    const a = this.#capacity.allocation
    if (!a) return null
    return { instanceCount: a.instanceCount, pools: structuredClone(a.pools) }
  }

  getInstanceId() {
    return this.#instanceId
  }
}

function createLLMRateLimiter(config) {
  return new LLMRateLimiter(config)
}

module.exports = { createLLMRateLimiter, createRedisBackend, getDefaultMaxWaitMS, DEFAULT_RATIO_ADJUSTMENT_CONFIG, LLMRateLimiter }
