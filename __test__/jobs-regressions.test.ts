// createLLMRateLimiter: tests added while splitting lib/jobs.js by concept: bugs found (each fails before its fix) and edges of the split.
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRateLimiter, createRedisBackend, RedisStore, type LLMRateLimiterConfig, type LLMRateLimiterInstance } from '../lib/index.js'
import { redisUrl } from './helpers/stores.js'

const made: LLMRateLimiterInstance[] = []
function limiter(config: LLMRateLimiterConfig) {
  const l = createLLMRateLimiter(config)
  made.push(l)
  return l
}
afterEach(async () => {
  await Promise.all(made.splice(0).map((l) => l.stop()))
})

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

describe('createLLMRateLimiter: memory options', () => {
  it('a bad recalculationIntervalMs is refused at construction; queueJob never throws', async () => {
    const config = (recalculationIntervalMs: unknown): LLMRateLimiterConfig => ({
      models: { a: {} },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 1, estimatedUsedMemoryKB: 10 } },
      memory: { recalculationIntervalMs: recalculationIntervalMs as number },
    })
    expect(() => createLLMRateLimiter(config(-5))).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_TOLLGATE_OUT_OF_RANGE' }))
    expect(() => createLLMRateLimiter(config('1s'))).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_TOLLGATE_INVALID_ARG' }))
    // A good one runs jobs (the interval timer is made at the first job).
    const l = limiter(config(50))
    const r = await l.queueJob({ jobId: 'j', job: () => ({ requestCount: 1, inputTokens: 1, cachedTokens: 0, outputTokens: 0, data: 'ok' }) })
    expect(r).toEqual({ data: 'ok', modelUsed: 'a' })
    // Unused (a fixed maxMemoryKB is never measured again): still ignored, as before.
    expect(() => createLLMRateLimiter({ ...config(-5), memory: { maxMemoryKB: 1000, recalculationIntervalMs: -5 } })).not.toThrow()
  })
})

describe('createLLMRateLimiter on Redis: timers after start()', () => {
  it('ratios are adjusted every adjustmentIntervalMs when start() was awaited before the first job', async () => {
    const store = new RedisStore(redisUrl())
    try {
      const l = limiter({
        models: { m: { maxConcurrentRequests: 10 } },
        resourceEstimationsPerJob: { A: { ratio: { initialValue: 0.5 }, maxWaitMS: { m: 0 } }, B: { ratio: { initialValue: 0.5 }, maxWaitMS: { m: 0 } } },
        // Only the interval adjusts (no adjustment on release).
        ratioAdjustmentConfig: { adjustmentIntervalMs: 20, releasesPerAdjustment: 0 },
        backend: createRedisBackend({ client: store, keyPrefix: `t:jobs-reg:${process.pid}:${Date.now()}:` }),
      })
      await l.start()
      const gate = deferred()
      const slots = l.getJobTypeStats().jobTypes.A.allocatedSlots
      expect(slots).toBeGreaterThan(0)
      // A: every slot busy; B: idle. The next interval moves share from B to A.
      const jobs = Array.from({ length: slots }, (_, i) =>
        l.queueJob({ jobId: `a${i}`, jobType: 'A', job: async () => (await gate.promise, { requestCount: 1, inputTokens: 1, cachedTokens: 0, outputTokens: 0, data: null }) }),
      )
      await expect.poll(() => l.getJobTypeStats().lastAdjustmentTime, { interval: 10, timeout: 2_000 }).not.toBeNull()
      expect(l.getJobTypeStats().jobTypes.A.currentRatio).toBeGreaterThan(0.5)
      gate.resolve()
      await Promise.all(jobs)
    } finally {
      await Promise.all(made.splice(0).map((l) => l.stop()))
      await store.close()
    }
  })
})

describe('createLLMRateLimiter on Redis: stop() while start() is under way', () => {
  it('leaves no heartbeat behind: the stopped instance does not register again', async () => {
    const store = new RedisStore(redisUrl())
    const keyPrefix = `t:jobs-reg:${process.pid}:${Date.now()}:stop:`
    const config = (): LLMRateLimiterConfig => ({
      models: { m: { maxConcurrentRequests: 10 } },
      backend: createRedisBackend({ client: store, keyPrefix, heartbeatIntervalMs: 20, instanceTimeoutMs: 10_000 }),
    })
    try {
      const first = limiter(config())
      const starting = first.start()
      await first.stop()
      await starting
      await new Promise((r) => setTimeout(r, 100)) // five heartbeat intervals
      const other = limiter(config())
      await other.start()
      expect(other.getAllocation()!.instanceCount).toBe(1)
      // start() after stop() works as before: both count.
      await first.start()
      await expect.poll(() => other.getAllocation()!.instanceCount, { interval: 10, timeout: 2_000 }).toBe(2)
    } finally {
      await Promise.all(made.splice(0).map((l) => l.stop()))
      await store.close()
    }
  })
})

describe('createLLMRateLimiter: a clock that fails while a job asks for room', () => {
  for (const kind of ['local', 'redis'] as const) {
    it(`${kind}: the job rejects with the clock's error and its job-type slot is given back`, async () => {
      const store = kind === 'redis' ? new RedisStore(redisUrl()) : null
      try {
        // One good reading (the job's queuedAt), then garbage until `good` is raised again.
        let good = 1
        const l = limiter({
          models: { m: { tokensPerMinute: 1_000 } },
          resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10, estimatedNumberOfRequests: 1 } },
          now: () => (good-- > 0 ? 1_700_000_040_000 : Number.NaN),
          ...(store ? { backend: createRedisBackend({ client: store, keyPrefix: `t:jobs-reg:${process.pid}:${Date.now()}:clock:` }) } : {}),
        })
        const job = () => ({ requestCount: 1, inputTokens: 10, cachedTokens: 0, outputTokens: 0, data: 'ok' })
        await expect(l.queueJob({ jobId: 'bad', job })).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_TOLLGATE_OUT_OF_RANGE', message: expect.stringContaining('config.now()') })
        good = Infinity
        expect(l.getJobTypeStats().jobTypes.s.inFlight).toBe(0)
        expect(await l.queueJob({ jobId: 'good', job })).toEqual({ data: 'ok', modelUsed: 'm' })
      } finally {
        await Promise.all(made.splice(0).map((l) => l.stop()))
        await store?.close()
      }
    })
  }
})

describe('createLLMRateLimiter: a lone job type and the ratio engine', () => {
  it('with lowLoadThreshold above highLoadThreshold a lone type is still adjusted (it can give to itself)', async () => {
    const run = async (ratioAdjustmentConfig: LLMRateLimiterConfig['ratioAdjustmentConfig']) => {
      const l = limiter({
        models: { a: { maxConcurrentRequests: 4 } },
        resourceEstimationsPerJob: { s: { maxWaitMS: { a: 0 } } },
        ratioAdjustmentConfig: { releasesPerAdjustment: 1, adjustmentIntervalMs: 0, ...ratioAdjustmentConfig },
      })
      const gate = deferred()
      const done = (data: string) => ({ requestCount: 1, inputTokens: 1, cachedTokens: 0, outputTokens: 0, data })
      const held = l.queueJob({ jobId: 'held', job: async () => (await gate.promise, done('held')) })
      // Released while the other runs: load 1 of 4 slots.
      await l.queueJob({ jobId: 'quick', job: () => done('quick') })
      const at = l.getJobTypeStats().lastAdjustmentTime
      gate.resolve()
      await held
      return at
    }
    // 0.25 is below 0.9 and above 0.1: the type is both donor and receiver.
    expect(await run({ lowLoadThreshold: 0.9, highLoadThreshold: 0.1 })).not.toBeNull()
    // The defaults (0.3 < 0.7): a lone type never moves.
    expect(await run({})).toBeNull()
  })
})
