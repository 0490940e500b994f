'use strict'
// Capacity: what may run at once, in this process. Each job type gets a share (its ratio) of
// the total slots, capped by its memory budget; ratios move from idle flexible types to busy
// ones; with a Redis backend the total is this instance's fair share of every model's limits
// (the allocation, from the instance count). Also the per-model limit arithmetic the limiter
// reports: availability, room for a job, model and job-type stats — from the counts a backend
// gives (`counts(m)`: minute tokens and requests, day tokens and requests, in flight, now, ms
// to the minute's and the day's end). The maths of the pools and ratios is engine/jobs.rs's.

const v8 = require('node:v8')
const native = require('../native')

class Capacity {
  #models
  #ratio
  #memory
  #byId
  /** The job types with their live state (ratio, slots, in flight, memory used). */
  types
  memTotalKB = 0
  totalSlots = 0
  lastAdjustment = null
  /** With a Redis backend, after the first heartbeat: `{instanceCount, pools, poolList}`. */
  allocation = null

  /** @param cfg the limiter's configuration (config.js) */
  constructor(cfg) {
    this.#models = cfg.models
    this.#ratio = cfg.ratio
    this.#memory = cfg.memory
    this.types = cfg.types.map((spec) => ({
      ...spec,
      ratio: spec.initialRatio,
      inFlight: 0,
      inFlightByModel: cfg.models.map(() => 0),
      allocated: 0,
      memUsedKB: 0,
      memCapKB: Infinity,
    }))
    this.#byId = new Map(this.types.map((t) => [t.id, t]))
    if (this.#memory.enabled) this.#computeMemory()
    this.#computeSlots()
  }

  get memEnabled() {
    return this.#memory.enabled
  }

  typeById(id) {
    return this.#byId.get(id)
  }

  // ---- a job's resources in this process: a slot of its type, and its memory

  take(t) {
    if (t.inFlight >= t.allocated) return false
    if (t.memoryKB > 0 && this.#memory.enabled && t.memUsedKB + t.memoryKB > t.memCapKB) return false
    t.inFlight++
    t.memUsedKB += t.memoryKB
    return true
  }

  give(t) {
    t.inFlight = Math.max(0, t.inFlight - 1)
    t.memUsedKB = Math.max(0, t.memUsedKB - t.memoryKB)
  }

  // ---- the layout: memory budget, job-type slots, ratios, the instance's share

  #computeMemory() {
    const o = this.#memory
    const base = o.maxKB === null ? Math.floor(v8.getHeapStatistics().total_available_size / 1024) : o.maxKB
    this.memTotalKB = Math.floor(base * o.freeRatio)
    for (const t of this.types) t.memCapKB = t.memoryKB > 0 ? Math.max(t.memoryKB, Math.floor(this.memTotalKB * t.ratio)) : Infinity
  }

  /** Job-type slots from the total capacity (local: LLM Rate Limiter's per-type share; distributed: Σ pool slots). */
  #computeSlots() {
    let total = 0
    if (this.allocation) {
      for (const p of this.allocation.poolList) total += p[0]
    } else {
      // One instance's pool per model (the distributed fair share with N = 1): the most jobs of average size its
      // limits admit at once; 100 for a model with no limits.
      for (const m of this.#models) total += native.jobPool(m.limits, [0, 0, 0, 0], 1, this.#averageEstimate())[0]
    }
    this.totalSlots = total
    const min = this.#ratio.minJobTypeCapacity
    for (const t of this.types) {
      let slots = Math.max(min, Math.floor(total * t.ratio + 1e-9))
      if (this.#memory.enabled && t.memoryKB > 0) slots = Math.max(min, Math.min(slots, Math.floor(t.memCapKB / t.memoryKB)))
      t.allocated = slots
    }
  }

  #averageEstimate() {
    const n = this.types.length
    const avgT = Math.floor(this.types.reduce((s, t) => s + t.tokens, 0) / n)
    const avgR = Math.floor(this.types.reduce((s, t) => s + t.requests, 0) / n)
    return [avgT || 1, avgR || 1]
  }

  /** Measures the memory budget again (the heap grows and shrinks) and lays slots out anew. */
  recomputeMemory() {
    this.#computeMemory()
    this.#computeSlots()
  }

  /**
   * Moves share from idle flexible types to busy ones (ratioAdjustmentConfig); the new ratios
   * by type id, or null when nothing moved. `now()` stamps lastAdjustment.
   */
  adjustRatios(now) {
    const rc = this.#ratio
    // A lone type can give only to itself, which needs a load below lowLoadThreshold and
    // above highLoadThreshold at once: nothing to ask the engine (it runs every few releases).
    if (this.types.length === 1 && rc.highLoadThreshold >= rc.lowLoadThreshold) return null
    const loads = this.types.map((t) => (t.allocated > 0 ? t.inFlight / t.allocated : 0))
    const next = native.jobAdjustRatios(
      this.types.map((t) => t.ratio),
      this.types.map((t) => t.flexible),
      loads,
      [rc.highLoadThreshold, rc.lowLoadThreshold, rc.maxAdjustment, rc.minRatio],
    )
    if (!next) return null
    this.types.forEach((t, i) => (t.ratio = next[i]))
    this.lastAdjustment = now()
    if (this.#memory.enabled) this.#computeMemory()
    this.#computeSlots()
    return Object.fromEntries(this.types.map((t) => [t.id, t.ratio]))
  }

  /**
   * This instance's share of every model among `instanceCount` instances, given each model's
   * global counts (`counts[m]`, minute and day tokens and requests first); the previous
   * instance count, or null on the first.
   */
  allocate(instanceCount, counts) {
    const n = Math.max(1, instanceCount)
    const avg = this.#averageEstimate()
    const poolList = this.#models.map((m, i) => native.jobPool(m.limits, counts[i].slice(0, 4), n, avg))
    const pools = {}
    this.#models.forEach((m, i) => {
      const p = poolList[i]
      pools[m.id] = { totalSlots: p[0], tokensPerMinute: p[1], requestsPerMinute: p[2], tokensPerDay: p[3], requestsPerDay: p[4] }
    })
    const before = this.allocation
    this.allocation = { instanceCount: n, pools, poolList }
    this.#computeSlots()
    return before ? before.instanceCount : null
  }

  // ---- per-model limits against a backend's counts

  /** What is left now across every model (the least per dimension), and the job slots that makes. */
  availability(countsOf) {
    const dims = { tokensPerMinute: null, tokensPerDay: null, requestsPerMinute: null, requestsPerDay: null, concurrentRequests: null }
    const min = (k, x) => (dims[k] = dims[k] === null ? x : Math.min(dims[k], x))
    this.#models.forEach((model, i) => {
      const [tpm, rpm, tpd, rpd, conc] = model.limits
      const c = countsOf(i)
      if (tpm) min('tokensPerMinute', Math.max(0, tpm - c[0]))
      if (rpm) min('requestsPerMinute', Math.max(0, rpm - c[1]))
      if (tpd) min('tokensPerDay', Math.max(0, tpd - c[2]))
      if (rpd) min('requestsPerDay', Math.max(0, rpd - c[3]))
      if (conc) min('concurrentRequests', Math.max(0, conc - c[4]))
    })
    let memoryKB = null
    if (this.#memory.enabled) memoryKB = this.types.reduce((s, t) => s + (t.memoryKB > 0 ? Math.max(0, t.memCapKB - t.memUsedKB) : 0), 0)
    let slots
    if (this.allocation) slots = this.allocation.poolList.reduce((s, p) => s + p[0], 0)
    else {
      const estT = Math.max(...this.types.map((t) => t.tokens))
      const estR = Math.max(...this.types.map((t) => t.requests))
      const estM = Math.max(...this.types.map((t) => t.memoryKB))
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

  /** Could a job of some type start on model `i` (counts `c`): its limits, and a free job-type slot? */
  hasRoom(i, c) {
    const [tpm, rpm, tpd, rpd, conc] = this.#models[i].limits
    const room = (limit, count, est) => limit === 0 || (count < limit && count + est <= limit)
    if (conc && c[4] >= conc) return false
    return this.types.some(
      (t) => t.inFlight < t.allocated && room(tpm, c[0], t.tokens) && room(rpm, c[1], t.requests) && room(tpd, c[2], t.tokens) && room(rpd, c[3], t.requests),
    )
  }

  /** getModelStats: each limit the model has, against counts `c`; `waiting` jobs in its queue. */
  modelStats(i, c, waiting) {
    const [tpm, rpm, tpd, rpd, conc] = this.#models[i].limits
    const minuteLeft = c[6]
    const dayLeft = c[7]
    const s = {}
    const counter = (limit, current, resetsInMs) => ({ current, limit, remaining: Math.max(0, limit - current), resetsInMs })
    if (conc) s.concurrency = { active: c[4], limit: conc, available: Math.max(0, conc - c[4]), waiting }
    if (rpm) s.requestsPerMinute = counter(rpm, c[1], minuteLeft)
    if (rpd) s.requestsPerDay = counter(rpd, c[3], dayLeft)
    if (tpm) s.tokensPerMinute = counter(tpm, c[0], minuteLeft)
    if (tpd) s.tokensPerDay = counter(tpd, c[2], dayLeft)
    if (this.#memory.enabled) s.memory = this.memoryStats()
    return s
  }

  memoryStats() {
    const used = this.types.reduce((sum, t) => sum + t.memUsedKB, 0)
    return {
      activeKB: used,
      maxCapacityKB: this.memTotalKB,
      availableKB: Math.max(0, this.memTotalKB - used),
      systemAvailableKB: Math.floor(v8.getHeapStatistics().total_available_size / 1024),
    }
  }

  /** getJobTypeStats: each type's ratio and slots, and with an allocation, its slots per model. */
  jobTypeStats() {
    const jobTypes = {}
    for (const t of this.types) {
      const resources = {}
      if (t.requests) resources.estimatedNumberOfRequests = t.requests
      if (t.tokens) resources.estimatedUsedTokens = t.tokens
      if (t.memoryKB) resources.estimatedUsedMemoryKB = t.memoryKB
      jobTypes[t.id] = { currentRatio: t.ratio, initialRatio: t.initialRatio, flexible: t.flexible, inFlight: t.inFlight, allocatedSlots: t.allocated, resources }
    }
    const s = { jobTypes, totalSlots: this.totalSlots, lastAdjustmentTime: this.lastAdjustment }
    if (this.allocation) {
      const min = this.#ratio.minJobTypeCapacity
      s.modelJobTypes = {}
      this.#models.forEach((m, i) => {
        const byType = (s.modelJobTypes[m.id] = {})
        for (const t of this.types) {
          byType[t.id] = { allocated: native.jobModelTypeSlots(this.allocation.poolList[i], t.ratio, t.tokens, t.requests, min), inFlight: t.inFlightByModel[i] }
        }
      })
    }
    return s
  }
}

module.exports = { Capacity }
