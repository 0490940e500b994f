// createLLMRateLimiter in local mode (no backend): LLM Rate Limiter's own acceptance cases,
// each asserting numbers.
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRateLimiter, getDefaultMaxWaitMS, type LLMRateLimiterConfig, type LLMRateLimiterInstance, type OverageEvent } from '../lib/index.js'
import { Clock } from './helpers/stores.js'

const pricing = { input: 2.5, cached: 1.25, output: 10 }
const T0 = 1_700_000_040_000 // second 0 of a minute

const made: LLMRateLimiterInstance[] = []
function limiter(config: LLMRateLimiterConfig) {
  const l = createLLMRateLimiter(config)
  made.push(l)
  return l
}
afterEach(async () => {
  await Promise.all(made.splice(0).map((l) => l.stop()))
})

/** A job that uses `usage` and finishes when `gate` resolves (at once without one). */
function job(usage: { inputTokens?: number; outputTokens?: number; cachedTokens?: number; requestCount?: number } = {}, gate?: Promise<unknown>) {
  return async ({ modelId }: { modelId: string }) => {
    if (gate) await gate
    return { requestCount: 1, inputTokens: 0, cachedTokens: 0, outputTokens: 0, ...usage, data: modelId }
  }
}

const tick = () => new Promise((r) => setImmediate(r))

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

/** A clock running in real time, shifted so the current minute ends in `msLeft`. */
function clockEndingMinuteIn(msLeft: number) {
  const base = Date.now()
  const offset = (Math.floor(base / 60000) + 2) * 60000 - msLeft - base
  return () => Date.now() + offset
}

describe('createLLMRateLimiter: configuration', () => {
  it('validates the config with the reference messages and codes', () => {
    expect(() => createLLMRateLimiter({ models: {} })).toThrow('At least one model must be configured in models')
    expect(() => createLLMRateLimiter({ models: { a: {}, b: {} } })).toThrow('escalationOrder is required')
    expect(() => createLLMRateLimiter({ models: { a: {} }, escalationOrder: ['x'] })).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_UNKNOWN_MODEL' }))
    expect(() => createLLMRateLimiter({ models: { a: {} }, resourceEstimationsPerJob: { x: { ratio: { initialValue: 0 } } } })).toThrow('must be greater than 0')
    expect(() =>
      createLLMRateLimiter({ models: { a: {} }, resourceEstimationsPerJob: { x: { ratio: { initialValue: 0.7 } }, y: { ratio: { initialValue: 0.6 } } } }),
    ).toThrow('Sum of specified ratio.initialValue values exceeds 1')
    expect(() => createLLMRateLimiter({ models: { a: { tokensPerMinute: -1 } } })).toThrow(RangeError)
    // `order` (LLM Rate Limiter's name) works too.
    expect(createLLMRateLimiter({ models: { a: {}, b: {} }, order: ['b', 'a'] }).getAvailableModel()).toBe('b')
  })

  it('initial ratios: specified kept, the rest split evenly', () => {
    const l = limiter({
      models: { a: { maxConcurrentRequests: 10 } },
      resourceEstimationsPerJob: { x: { ratio: { initialValue: 0.6 } }, y: {}, z: {} },
    })
    const s = l.getJobTypeStats()
    expect(s.totalSlots).toBe(10)
    expect([s.jobTypes.x.currentRatio, s.jobTypes.y.currentRatio, s.jobTypes.z.currentRatio]).toEqual([0.6, expect.closeTo(0.2, 9), expect.closeTo(0.2, 9)])
    expect([s.jobTypes.x.allocatedSlots, s.jobTypes.y.allocatedSlots, s.jobTypes.z.allocatedSlots]).toEqual([6, 2, 2])
  })

  it('rejects unknown job types and bad options', async () => {
    const l = limiter({ models: { a: {} }, resourceEstimationsPerJob: { x: {}, y: {} } })
    await expect(l.queueJob({ jobId: '1', jobType: 'nope', job: job() })).rejects.toThrow("Unknown job type 'nope'. Valid job types are: x, y")
    await expect(l.queueJob({ jobId: '', jobType: 'x', job: job() })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    await expect(l.queueJob({ jobId: '1', jobType: 'x', job: 5 as any })).rejects.toBeInstanceOf(TypeError)
    expect(() => l.getModelStats('zz')).toThrow('Unknown model: zz')
  })
})

describe('createLLMRateLimiter: reserve and settle', () => {
  const cfg = (clock: Clock, onOverage?: (e: OverageEvent) => void): LLMRateLimiterConfig => ({
    models: { a: { tokensPerMinute: 100_000, requestsPerMinute: 100, tokensPerDay: 1_000_000, pricing } },
    resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1 } },
    now: clock.now,
    onOverage,
  })

  it('same window: 10K estimated, 6K used → 6,000 counted; refunds add up; 0 → full refund', async () => {
    const clock = new Clock(T0)
    const l = limiter(cfg(clock))
    await l.queueJob({ jobId: '1', jobType: 's', job: job({ inputTokens: 4_000, outputTokens: 2_000 }) })
    expect(l.getModelStats('a').tokensPerMinute).toMatchObject({ current: 6_000, remaining: 94_000, resetsInMs: 60_000 })
    await l.queueJob({ jobId: '2', jobType: 's', job: job({ inputTokens: 7_000 }) })
    await l.queueJob({ jobId: '3', jobType: 's', job: job({ inputTokens: 8_000 }) })
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(6_000 + 7_000 + 8_000)
    await l.queueJob({ jobId: '4', jobType: 's', job: job({ requestCount: 0 }) })
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(21_000)
    expect(l.getModelStats('a').requestsPerMinute!.current).toBe(3)
  })

  it('overage: 10K → 15K counts 15,000 and fires onOverage; cached tokens count', async () => {
    const clock = new Clock(T0)
    const events: OverageEvent[] = []
    const l = limiter(cfg(clock, (e) => events.push(e)))
    await l.queueJob({ jobId: '1', jobType: 's', job: job({ inputTokens: 10_000, outputTokens: 5_000, requestCount: 3 }) })
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(15_000)
    expect(l.getModelStats('a').requestsPerMinute!.current).toBe(3)
    expect(events).toEqual([
      { resourceType: 'tokens', estimated: 10_000, actual: 15_000, overage: 5_000, timestamp: T0 },
      { resourceType: 'requests', estimated: 1, actual: 3, overage: 2, timestamp: T0 },
    ])
    events.length = 0
    await l.queueJob({ jobId: '2', jobType: 's', job: job({ inputTokens: 10_000, outputTokens: 2_000, cachedTokens: 7_000 }) }) // input counts the cached 7,000
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(15_000 + 12_000)
    expect(events).toEqual([{ resourceType: 'tokens', estimated: 10_000, actual: 12_000, overage: 2_000, timestamp: T0 }])
  })

  it('cross window: no refund in the new minute, only the overage; the day judged on its own', async () => {
    const clock = new Clock(T0 + 59_000)
    const l = limiter(cfg(clock))
    const gate = deferred()
    const p = l.queueJob({ jobId: '1', jobType: 's', job: job({ inputTokens: 6_000 }, gate.promise) })
    await tick()
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(10_000)
    clock.advance(2_000)
    gate.resolve()
    await p
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(0)
    expect(l.getModelStats('a').tokensPerDay!.current).toBe(6_000)
    const gate2 = deferred()
    const p2 = l.queueJob({ jobId: '2', jobType: 's', job: job({ inputTokens: 15_000 }, gate2.promise) })
    await tick()
    clock.advance(60_000)
    gate2.resolve()
    await p2
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(5_000)
    expect(l.getModelStats('a').tokensPerDay!.current).toBe(21_000)
  })

  it('a throw keeps the estimate; concurrency and memory are released', async () => {
    const clock = new Clock(T0)
    const errors: string[] = []
    const l = limiter({
      models: { a: { tokensPerMinute: 100_000, maxConcurrentRequests: 2 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1, estimatedUsedMemoryKB: 1_000 } },
      memory: { maxMemoryKB: 10_000, freeMemoryRatio: 1 },
      now: clock.now,
    })
    const boom = async () => {
      throw new Error('boom')
    }
    await expect(l.queueJob({ jobId: '1', jobType: 's', job: boom, onError: (e) => errors.push(e.message) })).rejects.toThrow('boom')
    expect(errors).toEqual(['boom'])
    const s = l.getModelStats('a')
    expect(s.tokensPerMinute!.current).toBe(10_000)
    expect(s.concurrency).toMatchObject({ active: 0, available: 2 })
    expect(s.memory).toMatchObject({ activeKB: 0, maxCapacityKB: 10_000 })
  })
})

describe('createLLMRateLimiter: callbacks that throw', () => {
  it('are logged with the job id and change nothing else', async () => {
    const logs: [string, Record<string, unknown>][] = []
    const thrower = (name: string) => () => {
      throw new Error(`${name} broke`)
    }
    const l = limiter({
      models: { a: { tokensPerMinute: 100_000 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10, estimatedNumberOfRequests: 1 } },
      now: new Clock(T0).now,
      onOverage: thrower('onOverage'),
      onAvailableSlotsChange: thrower('onAvailableSlotsChange'),
      onLog: (message, data) => logs.push([message, data as Record<string, unknown>]),
    })
    const over = async () => ({ requestCount: 1, inputTokens: 50, cachedTokens: 0, outputTokens: 0, data: 'ok' })
    const out = await l.queueJob({ jobId: 'j1', jobType: 's', job: over, onComplete: thrower('onComplete') })
    expect(out.data).toBe('ok')
    const boom = async () => {
      throw new Error('boom')
    }
    await expect(l.queueJob({ jobId: 'j2', jobType: 's', job: boom, onError: thrower('onError') })).rejects.toThrow('boom')
    const threw = (name: string) => logs.filter(([m]) => m === `LLMRateLimiter| ${name} threw`).map(([, d]) => d)
    expect(threw('onComplete')).toEqual([{ jobId: 'j1', error: 'onComplete broke' }])
    expect(threw('onError')).toEqual([{ jobId: 'j2', error: 'onError broke' }])
    expect(threw('onOverage')).toEqual([{ error: 'onOverage broke' }]) // 50 tokens against 10
    expect(threw('onAvailableSlotsChange').length).toBeGreaterThan(0)
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(60) // 50 settled + 10 kept by the throw
  })
})

describe('createLLMRateLimiter: capacity, fallback and waiting', () => {
  it('capacity plus one: 14 jobs start at once, the 15th wakes at the minute boundary', async () => {
    const now = clockEndingMinuteIn(400)
    const boundary = Math.ceil(now() / 60000) * 60000
    const l = limiter({
      models: { a: { tokensPerMinute: 140_000 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1, maxWaitMS: { a: 5_000 } } },
      now,
    })
    const started: number[] = []
    const timed = async ({ modelId }: { modelId: string }) => {
      started.push(now())
      return { requestCount: 1, inputTokens: 10_000, cachedTokens: 0, outputTokens: 0, data: modelId }
    }
    const jobs = Array.from({ length: 15 }, (_, i) => l.queueJob({ jobId: `j${i}`, jobType: 's', job: timed }))
    await tick()
    expect(started.length).toBe(14)
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(140_000)
    await Promise.all(jobs)
    expect(started.length).toBe(15)
    expect(started[14]).toBeGreaterThanOrEqual(boundary)
    expect(started[14] - boundary).toBeLessThan(250) // woken by a timer at the reset (nothing polls locally)
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(10_000)
  })

  it('fallback on TPM, RPM and concurrency follows the order; the primary is not charged', async () => {
    const l = limiter({
      models: { a: { tokensPerMinute: 20_000 }, b: { requestsPerMinute: 1 }, c: { maxConcurrentRequests: 1 } },
      escalationOrder: ['a', 'b', 'c'],
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1, maxWaitMS: { a: 0, b: 0, c: 0 } } },
    })
    const gate = deferred()
    const rs = Array.from({ length: 5 }, (_, i) => l.queueJob({ jobId: `${i}`, jobType: 's', job: job({ inputTokens: 10_000 }, gate.promise) }).catch((e) => e.code))
    gate.resolve()
    const out = await Promise.all(rs)
    expect(out.map((r: any) => r.modelUsed ?? r)).toEqual(['a', 'a', 'b', 'c', 'ERR_TOLLGATE_NO_CAPACITY'])
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(20_000)
    expect(l.getModelStats('b').requestsPerMinute!.current).toBe(1)
  })

  it('maxWaitMS 0 delegates at once; waits escalate after maxWaitMS; chained waits then reject', async () => {
    const l = limiter({
      models: { a: { maxConcurrentRequests: 1 }, b: { maxConcurrentRequests: 1 } },
      escalationOrder: ['a', 'b'],
      resourceEstimationsPerJob: {
        fast: { maxWaitMS: { a: 0, b: 0 } },
        patient: { maxWaitMS: { a: 300, b: 200 } },
      },
      ratioAdjustmentConfig: { minJobTypeCapacity: 2 },
    })
    const gate = deferred()
    const holdA = l.queueJob({ jobId: 'h1', jobType: 'fast', job: job({}, gate.promise) })
    const holdB = l.queueJob({ jobId: 'h2', jobType: 'fast', job: job({}, gate.promise) })
    let t = performance.now()
    await expect(l.queueJob({ jobId: 'f', jobType: 'fast', job: job() })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_NO_CAPACITY' })
    expect(performance.now() - t).toBeLessThan(100)
    const errors: string[] = []
    t = performance.now()
    await expect(l.queueJob({ jobId: 'p', jobType: 'patient', job: job(), onError: (e) => errors.push((e as any).code) })).rejects.toThrow(
      'All models exhausted: no capacity available within maxWaitMS',
    )
    const waited = performance.now() - t
    expect(waited).toBeGreaterThanOrEqual(490)
    expect(waited).toBeLessThan(800)
    expect(errors).toEqual(['ERR_TOLLGATE_NO_CAPACITY'])
    gate.resolve()
    await Promise.all([holdA, holdB])
  })

  it('a waiting job starts as soon as a running one ends, in FIFO order', async () => {
    const l = limiter({ models: { a: { maxConcurrentRequests: 1 } }, resourceEstimationsPerJob: { s: { maxWaitMS: { a: 2_000 } } } })
    const order: string[] = []
    const gates = [deferred(), deferred(), deferred()]
    const run = (i: number) =>
      l.queueJob({
        jobId: `${i}`,
        jobType: 's',
        job: async ({ modelId }) => {
          order.push(`start${i}`)
          await gates[i].promise
          return { requestCount: 1, inputTokens: 0, cachedTokens: 0, outputTokens: 0, data: modelId }
        },
      })
    const ps = [run(0), run(1), run(2)]
    await tick()
    expect(order).toEqual(['start0'])
    expect(l.getModelStats('a').concurrency).toMatchObject({ active: 1, waiting: 2 })
    expect(l.getActiveJobs().map((j) => j.status)).toEqual(['processing', 'waiting-for-model', 'waiting-for-model'])
    gates[0].resolve()
    await ps[0]
    await new Promise((r) => setImmediate(r))
    expect(order).toEqual(['start0', 'start1'])
    gates[1].resolve()
    gates[2].resolve()
    await Promise.all(ps)
    expect(order).toEqual(['start0', 'start1', 'start2'])
  })

  it('a job held back only by its own job type does not block other types on the model', async () => {
    const l = limiter({
      models: { a: { maxConcurrentRequests: 10 } },
      resourceEstimationsPerJob: { small: { ratio: { initialValue: 0.1 }, maxWaitMS: { a: 1_000 } }, other: { maxWaitMS: { a: 0 } } },
    })
    expect(l.getJobTypeStats().jobTypes.small.allocatedSlots).toBe(1)
    const gate = deferred()
    const first = l.queueJob({ jobId: 's1', jobType: 'small', job: job({}, gate.promise) })
    const second = l.queueJob({ jobId: 's2', jobType: 'small', job: job() }) // waits for the small slot
    await tick()
    expect(l.getActiveJobs().map((j) => j.status)).toEqual(['processing', 'waiting-for-model'])
    // maxWaitMS 0 on a model with free capacity: runs at once, not queued behind s2.
    await expect(l.queueJob({ jobId: 'o', jobType: 'other', job: job() })).resolves.toMatchObject({ modelUsed: 'a' })
    gate.resolve()
    await Promise.all([first, second])
  })

  it('the default maxWaitMS is the time to the next minute plus 5 s', () => {
    expect(getDefaultMaxWaitMS(T0)).toBe(65_000)
    expect(getDefaultMaxWaitMS(T0 + 59_999)).toBe(6_000)
    expect(getDefaultMaxWaitMS(T0 + 30_500)).toBe(35_000)
    const clock = new Clock(T0 + 10_000)
    const l = limiter({ models: { a: { maxConcurrentRequests: 1 } }, now: clock.now })
    const gate = deferred()
    const a = l.queueJob({ jobId: '1', job: job({}, gate.promise) })
    const b = l.queueJob({ jobId: '2', job: job() })
    expect(l.getActiveJobs()[1]).toMatchObject({ maxWaitMS: 55_000, timeoutAt: T0 + 10_000 + 55_000 })
    gate.resolve()
    return Promise.all([a, b])
  })

  it('memory and job-type slots limit what runs: min(5 memory slots, 10 concurrency) = 5', async () => {
    const l = limiter({
      models: { a: { maxConcurrentRequests: 10 } },
      resourceEstimationsPerJob: { s: { estimatedUsedMemoryKB: 10_240, maxWaitMS: { a: 2_000 } } },
      memory: { maxMemoryKB: 51_200, freeMemoryRatio: 1 },
    })
    const gate = deferred()
    let running = 0
    let peak = 0
    const ps = Array.from({ length: 7 }, (_, i) =>
      l.queueJob({
        jobId: `${i}`,
        job: async ({ modelId }) => {
          peak = Math.max(peak, ++running)
          await gate.promise
          running--
          return { requestCount: 1, inputTokens: 0, cachedTokens: 0, outputTokens: 0, data: modelId }
        },
      }),
    )
    await tick()
    expect(running).toBe(5)
    expect(l.getStats().memory).toMatchObject({ activeKB: 51_200, availableKB: 0 })
    gate.resolve()
    await Promise.all(ps)
    expect(peak).toBe(5)
    expect(l.getStats().memory!.activeKB).toBe(0)
  })
})

describe('createLLMRateLimiter: the reject contract and costs', () => {
  const models = { a: { tokensPerMinute: 100_000, pricing: { input: 2, cached: 1, output: 8 } }, b: { tokensPerMinute: 100_000, pricing } }
  const types = { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1 } }

  it('reject(usage) delegates, records the usage on the model that ran, and costs add up', async () => {
    const l = limiter({ models, escalationOrder: ['a', 'b'], resourceEstimationsPerJob: types })
    let ctx: any
    const r = await l.queueJob({
      jobId: '1',
      jobType: 's',
      job: async ({ modelId }, reject) => {
        if (modelId === 'a') {
          reject({ requestCount: 1, inputTokens: 1_000_000, cachedTokens: 0, outputTokens: 0 })
          throw new Error('429 from a') // LLM Rate Limiter's README pattern: still delegates
        }
        return { requestCount: 1, inputTokens: 2_000_000, cachedTokens: 1_000_000, outputTokens: 1_000_000, data: 'ok' }
      },
      onComplete: (_r, c) => (ctx = c),
    })
    expect(r).toEqual({ data: 'ok', modelUsed: 'b' })
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(1_000_000)
    expect(l.getModelStats('b').tokensPerMinute!.current).toBe(3_000_000)
    expect(ctx.usage.map((u: any) => [u.modelId, u.cost])).toEqual([
      ['a', 2], // 1M input tokens cost exactly pricing.input
      ['b', 2.5 + 1.25 + 10],
    ])
    expect(ctx.totalCost).toBe(15.75)
  })

  it('reject(usage, {delegate:false}) fails with the usage recorded; onError sees the cost', async () => {
    const l = limiter({ models, escalationOrder: ['a', 'b'], resourceEstimationsPerJob: types })
    let seen: any
    await expect(
      l.queueJob({
        jobId: '1',
        jobType: 's',
        job: async (_a, reject) => {
          reject({ requestCount: 2, inputTokens: 4_000, cachedTokens: 0, outputTokens: 2_000 }, { delegate: false })
          return { requestCount: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, data: null }
        },
        onError: (e, c) => (seen = { code: (e as any).code, c }),
      }),
    ).rejects.toMatchObject({ code: 'ERR_TOLLGATE_JOB_REJECTED' })
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(6_000)
    expect(l.getModelStats('b').tokensPerMinute!.current).toBe(0)
    expect(seen.code).toBe('ERR_TOLLGATE_JOB_REJECTED')
    expect(seen.c.totalCost).toBeCloseTo((4_000 * 2 + 2_000 * 8) / 1e6, 12)
  })

  it('a job that always rejects retries from the first model (a, b, a, b) and stops at maxAttempts', async () => {
    const l = limiter({ models, escalationOrder: ['a', 'b'], resourceEstimationsPerJob: types })
    const tried: string[] = []
    await expect(
      l.queueJob({
        jobId: '1',
        jobType: 's',
        job: ({ modelId }, reject) => {
          tried.push(modelId)
          reject({ requestCount: 1, inputTokens: 100, cachedTokens: 0, outputTokens: 0 })
          return { requestCount: 1, inputTokens: 0, cachedTokens: 0, outputTokens: 0, data: null }
        },
      }),
    ).rejects.toMatchObject({ code: 'ERR_TOLLGATE_JOB_ATTEMPTS' })
    expect(tried).toEqual(['a', 'b', 'a', 'b'])
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(200)
    expect(l.getActiveJobs()).toEqual([])
  })

  it('args reach the job with modelId; a malformed result fails and keeps the estimate', async () => {
    const l = limiter({ models, escalationOrder: ['a', 'b'], resourceEstimationsPerJob: types })
    const r = await l.queueJob({ jobId: '1', jobType: 's', args: { prompt: 'hi' }, job: async (a) => ({ requestCount: 1, inputTokens: 1, cachedTokens: 0, outputTokens: 0, data: a }) })
    expect(r.data).toEqual({ prompt: 'hi', modelId: 'a' })
    await expect(l.queueJob({ jobId: '2', jobType: 's', job: (() => 'text') as any })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(1 + 10_000)
  })
})

describe('createLLMRateLimiter: process lifetime', () => {
  it('a waiting job keeps the process alive until its maxWaitMS, then the process exits by itself', async () => {
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const lib = require.resolve('../lib/index.js')
    const script = `
      const { createLLMRateLimiter } = require(${JSON.stringify(lib)})
      const l = createLLMRateLimiter({ models: { a: { requestsPerDay: 1 } }, resourceEstimationsPerJob: { s: { estimatedNumberOfRequests: 1, maxWaitMS: { a: 300 } } } })
      const job = async () => ({ requestCount: 1, inputTokens: 0, cachedTokens: 0, outputTokens: 0, data: 1 })
      const t = Date.now()
      l.queueJob({ jobId: '1', job }).then(() => l.queueJob({ jobId: '2', job })).catch((e) => process.stdout.write(JSON.stringify({ code: e.code, waited: Date.now() - t })))`
    const t = performance.now()
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { timeout: 10_000 })
    const out = JSON.parse(stdout)
    expect(out.code).toBe('ERR_TOLLGATE_NO_CAPACITY')
    expect(out.waited).toBeGreaterThanOrEqual(290)
    // It exits right after: no timer is left for the day window's reset.
    expect(performance.now() - t).toBeLessThan(3_000)
  })
})

describe('createLLMRateLimiter: onAvailableSlotsChange', () => {
  it('reports availability at job start and the adjustment when usage differs from the estimate', async () => {
    const clock = new Clock(T0)
    const calls: any[] = []
    const l = limiter({
      models: { a: { tokensPerMinute: 100_000, requestsPerMinute: 10, maxConcurrentRequests: 4 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1 } },
      onAvailableSlotsChange: (availability, reason, modelId, adjustment) => calls.push({ availability, reason, modelId, adjustment }),
      now: clock.now,
    })
    await l.queueJob({ jobId: '1', job: job({ inputTokens: 1_100, outputTokens: 500, cachedTokens: 100 }) })
    expect(calls[0]).toMatchObject({
      reason: 'tokensMinute',
      modelId: 'a',
      availability: { slots: 3, tokensPerMinute: 90_000, requestsPerMinute: 9, concurrentRequests: 3, tokensPerDay: null, requestsPerDay: null, memoryKB: null },
    })
    // Cached tokens count in the adjustment too (the reference left them out).
    expect(calls[1]).toMatchObject({
      reason: 'adjustment',
      availability: { tokensPerMinute: 98_400, concurrentRequests: 4, slots: 4 },
      adjustment: { tokensPerMinute: -8_400, requestsPerMinute: 0, memoryKB: 0, concurrentRequests: 0 },
    })
    expect(calls.length).toBe(2)
  })
})

describe('createLLMRateLimiter: sliding windows', () => {
  it('the limit holds over every trailing minute, not per calendar minute', async () => {
    const clock = new Clock(T0 + 50_000)
    const l = limiter({
      models: { a: { requestsPerMinute: 3, tokensPerMinute: 1_000 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 100, estimatedNumberOfRequests: 1, maxWaitMS: { a: 0 } } },
      windows: 'sliding',
      now: clock.now,
    })
    for (let i = 0; i < 3; i++) await l.queueJob({ jobId: `${i}`, job: job({ inputTokens: 50 }) })
    expect(l.getModelStats('a').requestsPerMinute).toMatchObject({ current: 3, remaining: 0, resetsInMs: 61_000 })
    expect(l.getModelStats('a').tokensPerMinute!.current).toBe(150)
    clock.advance(10_000) // a new calendar minute: a fixed window would admit 3 more
    await expect(l.queueJob({ jobId: 'x', job: job() })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_NO_CAPACITY' })
    clock.advance(50_999)
    await expect(l.queueJob({ jobId: 'y', job: job() })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_NO_CAPACITY' })
    clock.advance(1)
    await expect(l.queueJob({ jobId: 'z', job: job() })).resolves.toMatchObject({ modelUsed: 'a' })
    expect(l.getModelStats('a').requestsPerMinute!.current).toBe(1)
    expect(() => createLLMRateLimiter({ models: { a: {} }, windows: 'rolling' as any })).toThrow(TypeError)
  })
})

describe('createLLMRateLimiter: job-type ratios', () => {
  it('a busy flexible type takes share from an idle one; the fixed type never moves; sum stays 1', async () => {
    const l = limiter({
      models: { a: { maxConcurrentRequests: 100 } },
      resourceEstimationsPerJob: {
        A: { ratio: { initialValue: 0.3 }, maxWaitMS: { a: 0 } },
        B: { ratio: { initialValue: 0.4 }, maxWaitMS: { a: 0 } },
        C: { ratio: { initialValue: 0.3, flexible: false }, maxWaitMS: { a: 0 } },
      },
      ratioAdjustmentConfig: { releasesPerAdjustment: 1, adjustmentIntervalMs: 0 },
    })
    const gate = deferred()
    // A: 5 of 30 slots busy (16.7 %); B: 38 of 40 (95 %). One B release triggers the adjustment.
    const ps = [
      ...Array.from({ length: 5 }, (_, i) => l.queueJob({ jobId: `a${i}`, jobType: 'A', job: job({}, gate.promise) })),
      ...Array.from({ length: 39 }, (_, i) => l.queueJob({ jobId: `b${i}`, jobType: 'B', job: job({}, i === 0 ? undefined : gate.promise) })),
    ]
    await ps[5]
    const s = l.getJobTypeStats().jobTypes
    expect(s.A.currentRatio).toBeCloseTo(0.3 - 0.2 * (1 - 5 / 30), 3)
    expect(s.B.currentRatio).toBeCloseTo(0.4 + 0.2 * (1 - 5 / 30), 3)
    expect(s.C.currentRatio).toBeCloseTo(0.3, 9)
    expect(s.A.currentRatio + s.B.currentRatio + s.C.currentRatio).toBeCloseTo(1, 3)
    expect(s.B.allocatedSlots).toBe(Math.floor(100 * s.B.currentRatio))
    gate.resolve()
    await Promise.all(ps)
  })
})

describe('createLLMRateLimiter and ProviderLimiter: bad input', () => {
  const INVALID = { name: 'TypeError', code: 'ERR_TOLLGATE_INVALID_ARG' }
  const RANGE = { name: 'RangeError', code: 'ERR_TOLLGATE_OUT_OF_RANGE' }
  const badIds: Array<[unknown, object]> = [
    [undefined, INVALID],
    [null, INVALID],
    ['', INVALID],
    [42, INVALID],
    ['x'.repeat(1025), RANGE],
  ]
  const badCounts: Array<[unknown, object]> = [
    [NaN, RANGE],
    [-1, RANGE],
    [1.5, RANGE],
    [2 ** 60, RANGE],
    ['5', INVALID],
    [null, INVALID],
  ]

  it('queueJob rejects (never throws) on a bad jobId, a bad result or a bad reject usage', async () => {
    const l = limiter({ models: { a: { tokensPerMinute: 1_000_000 } } })
    for (const [id, expected] of badIds) {
      let p: Promise<unknown>
      expect(() => (p = l.queueJob({ jobId: id as any, job: job() }))).not.toThrow()
      await expect(p!).rejects.toMatchObject(expected)
    }
    for (const [n, expected] of badCounts) {
      const errors: unknown[] = []
      await expect(l.queueJob({ jobId: 'r', job: (() => ({ ...done(), inputTokens: n })) as any, onError: (e) => errors.push(e) })).rejects.toMatchObject(expected)
      expect(errors).toHaveLength(1)
      await expect(
        l.queueJob({
          jobId: 'j',
          job: ((_a: unknown, reject: any) => {
            reject({ requestCount: n })
            return done()
          }) as any,
        }),
      ).rejects.toMatchObject(expected)
    }
    // Nothing leaked: every failed job gave its slot and concurrency back.
    expect(l.getActiveJobs()).toEqual([])
    expect(l.getJobTypeStats().jobTypes.default.inFlight).toBe(0)
    function done() {
      return { requestCount: 1, inputTokens: 1, cachedTokens: 0, outputTokens: 0, data: null }
    }
  })

  it('ProviderLimiter validates its options and rejects bad calls', async () => {
    const { ProviderLimiter } = await import('../lib/index.js')
    expect(() => new ProviderLimiter({ providers: {} })).toThrow(TypeError)
    expect(() => new ProviderLimiter({ providers: { x: { points: 0 } } })).toThrow(RangeError)
    const l = new ProviderLimiter({ providers: { openai: { points: 5 } } })
    for (const [id, expected] of badIds.filter(([x]) => x !== undefined)) await expect(l.tryConsume('openai', id as any)).rejects.toMatchObject(expected)
    for (const [n, expected] of badCounts) await expect(l.tryConsume('openai', 'global', n as any)).rejects.toMatchObject(expected)
    await expect(l.run('openai', 5 as any)).rejects.toMatchObject(INVALID)
  })
})
