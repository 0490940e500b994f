// createLLMRateLimiter with createRedisBackend on the harness's redis-server: global limits
// that hold across instances and real processes, heartbeats, scale up and down.
import { execFile, spawn } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import Redis from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { codes, createLLMRateLimiter, createRedisBackend, RedisStore, type LLMRateLimiterConfig, type LLMRateLimiterInstance } from '../lib/index.js'
import { redisUrl } from './helpers/stores.js'

const run = promisify(execFile)
const worker = path.join(__dirname, 'helpers', 'jobs-worker.cjs')
const tick = () => new Promise((r) => setImmediate(r))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let n = 0
const prefix = () => `t:jobs:${process.pid}:${Date.now()}:${n++}:`
const made: LLMRateLimiterInstance[] = []
const stores: RedisStore[] = []
function limiter(config: LLMRateLimiterConfig) {
  const l = createLLMRateLimiter(config)
  made.push(l)
  return l
}
function backend(keyPrefix: string, heartbeatIntervalMs = 1000, instanceTimeoutMs = 5000) {
  const store = new RedisStore(redisUrl())
  stores.push(store)
  return createRedisBackend({ client: store, keyPrefix, heartbeatIntervalMs, instanceTimeoutMs })
}
afterEach(async () => {
  await Promise.all(made.splice(0).map((l) => l.stop()))
})
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()))
})

function clockEndingMinuteIn(msLeft: number) {
  const base = Date.now()
  const offset = (Math.floor(base / 60000) + 2) * 60000 - msLeft - base
  return () => Date.now() + offset
}

const done = (data: unknown = null, inputTokens = 10_000) => ({ requestCount: 1, inputTokens, cachedTokens: 0, outputTokens: 0, data })

describe('createLLMRateLimiter on Redis', () => {
  it('validates createRedisBackend options', () => {
    expect(() => createRedisBackend({} as any)).toThrow(TypeError)
    expect(() => createRedisBackend({ url: 'http://x' })).toThrow(TypeError)
    expect(() => createRedisBackend({ url: redisUrl(), heartbeatIntervalMs: 5000, instanceTimeoutMs: 1000 })).toThrow(RangeError)
    expect(createRedisBackend(redisUrl())).toMatchObject({ kind: 'redis', keyPrefix: 'llm-rate-limiter:', heartbeatIntervalMs: 5000, instanceTimeoutMs: 15000 })
  })

  it('one job: the global counter holds its actual usage; concurrency goes back to 0', async () => {
    const p = prefix()
    const l = limiter({
      models: { m: { tokensPerMinute: 100_000, maxConcurrentRequests: 5 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1 } },
      backend: backend(p),
    })
    await l.start()
    let during: any
    await l.queueJob({
      jobId: '1',
      job: async () => {
        during = l.getModelStats('m')
        return done(null, 6_000)
      },
    })
    expect(during.tokensPerMinute.current).toBe(10_000)
    expect(during.concurrency.active).toBe(1)
    const after = l.getModelStats('m')
    expect(after.tokensPerMinute!.current).toBe(6_000)
    expect(after.concurrency!.active).toBe(0)
    // A second instance on the same prefix sees the same global counts.
    const other = limiter({ models: { m: { tokensPerMinute: 100_000, maxConcurrentRequests: 5 } }, backend: backend(p) })
    await other.start()
    expect(other.getModelStats('m').tokensPerMinute!.current).toBe(6_000)
    expect(other.getAllocation()).toMatchObject({ instanceCount: 2, pools: { m: { tokensPerMinute: 47_000 } } })
  })

  it('capacity plus one across two instances: 14 start, the 15th starts at the minute boundary', async () => {
    const p = prefix()
    const now = clockEndingMinuteIn(500)
    const boundary = Math.ceil(now() / 60000) * 60000
    const cfg = (): LLMRateLimiterConfig => ({
      models: { m: { tokensPerMinute: 140_000 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1, maxWaitMS: { m: 5_000 } } },
      backend: backend(p),
      ratioAdjustmentConfig: { minJobTypeCapacity: 20 },
      now,
    })
    const a = limiter(cfg())
    const b = limiter(cfg())
    await Promise.all([a.start(), b.start()])
    const started: number[] = []
    const job = async () => {
      started.push(now())
      return done()
    }
    const jobs = Array.from({ length: 15 }, (_, i) => (i % 2 ? a : b).queueJob({ jobId: `j${i}`, job }))
    await sleep(100)
    expect(started.length).toBe(14)
    await Promise.all(jobs)
    expect(started.length).toBe(15)
    expect(started[14]).toBeGreaterThanOrEqual(boundary)
    expect(started[14] - boundary).toBeLessThan(300) // woken at the reset (polls every 100 ms), not at a 5 s heartbeat
    // The instance that ran the 15th holds the new minute's global count from its last reply.
    const counts = [a, b].map((l) => l.getModelStats('m').tokensPerMinute!.current)
    expect(Math.max(...counts)).toBe(10_000)
  })

  it('3 real processes × 20 concurrent jobs never exceed the global TPM or RPM in any minute', async () => {
    for (const [tpm, rpm, limit] of [
      [100_000, 1_000, 10],
      [1_000_000, 7, 7],
    ]) {
      const p = prefix()
      const outs = await Promise.all(
        Array.from({ length: 3 }, () => run(process.execPath, [worker, 'burst', redisUrl(), p, String(tpm), String(rpm), '20', '10000'], { timeout: 15_000 })),
      )
      const starts: number[] = outs.flatMap((o) => JSON.parse(o.stdout).admitted)
      const perMinute = new Map<number, number>()
      for (const t of starts) perMinute.set(Math.floor(t / 60000), (perMinute.get(Math.floor(t / 60000)) ?? 0) + 1)
      for (const count of perMinute.values()) expect(count).toBeLessThanOrEqual(limit)
      // A burst inside one minute admits exactly the limit.
      if (perMinute.size === 1) expect(starts.length).toBe(limit)
      else expect(starts.length).toBeGreaterThanOrEqual(limit)
    }
  })

  it('3 real processes waiting across a minute boundary: exactly the TPM in each window', async () => {
    const p = prefix()
    // A clock shared by the processes (real time, shifted): the minute ends in 2.5 s, time
    // enough for three Node processes to start and fill the first window on a loaded machine;
    // jobs wait up to 4 s, so the ones queued first reach the next window.
    const base = Date.now()
    const offset = (Math.floor(base / 60000) + 2) * 60000 - 2_500 - base
    const outs = await Promise.all(
      Array.from({ length: 3 }, () =>
        run(process.execPath, [worker, 'burst', redisUrl(), p, '100000', '1000', '20', '10000', '4000', String(offset)], { timeout: 20_000 }),
      ),
    )
    const starts: number[] = outs.flatMap((o) => JSON.parse(o.stdout).admitted)
    const boundary = (Math.floor(base / 60000) + 2) * 60000
    const before = starts.filter((t) => t < boundary).length
    const after = starts.filter((t) => t >= boundary)
    expect([before, after.length]).toEqual([10, 10])
    // The second window's jobs were woken at the reset (polling every 100 ms at most).
    expect(Math.min(...after) - boundary).toBeLessThan(300)
  })

  it('scale up and down reach every instance: job-type slots follow the instance count', async () => {
    const p = prefix()
    const cfg = (): LLMRateLimiterConfig => ({
      models: { m: { tokensPerMinute: 100_000 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1 } },
      backend: backend(p, 50, 300),
    })
    const a = limiter(cfg())
    await a.start()
    expect(a.getAllocation()).toEqual({ instanceCount: 1, pools: { m: { totalSlots: 10, tokensPerMinute: 100_000, requestsPerMinute: 0, tokensPerDay: 0, requestsPerDay: 0 } } })
    expect(a.getJobTypeStats().jobTypes.s.allocatedSlots).toBe(10)
    const b = limiter(cfg())
    const c = limiter(cfg())
    await Promise.all([b.start(), c.start()])
    await sleep(120)
    expect(a.getAllocation()!.instanceCount).toBe(3)
    expect(a.getJobTypeStats().jobTypes.s.allocatedSlots).toBe(3)
    expect(a.getAllocation()!.pools.m.tokensPerMinute).toBe(33_333)
    await Promise.all([b.stop(), c.stop()])
    await sleep(120)
    expect(a.getAllocation()!.instanceCount).toBe(1)
    expect(a.getJobTypeStats().jobTypes.s.allocatedSlots).toBe(10)
  })

  it('a killed instance is dropped after instanceTimeoutMs and its concurrency flows back', async () => {
    const p = prefix()
    const child = spawn(process.execPath, [worker, 'hold', redisUrl(), p, '2'], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('held') && resolve())
      child.once('exit', () => reject(new Error('worker exited')))
    })
    const a = limiter({
      models: { m: { maxConcurrentRequests: 2 } },
      resourceEstimationsPerJob: { s: { maxWaitMS: { m: 5_000 } } },
      backend: backend(p, 50, 300),
    })
    await a.start()
    expect(a.getModelStats('m').concurrency!.active).toBe(2)
    const t = performance.now()
    child.kill('SIGKILL')
    const r = await a.queueJob({ jobId: 'x', job: async () => done('ran', 0) })
    const waited = performance.now() - t
    expect(r).toEqual({ data: 'ran', modelUsed: 'm' })
    expect(waited).toBeGreaterThanOrEqual(200)
    expect(waited).toBeLessThan(1_500)
    await sleep(150) // the next heartbeats report the instance count
    expect(a.getAllocation()!.instanceCount).toBe(1)
  })

  it("a killed instance's reservations come back like expired holds: its tokens-per-day estimates too", async () => {
    const p = prefix()
    // 3 jobs × 1,000 estimated tokens: the day's 3,000 are all reserved by the worker.
    const child = spawn(process.execPath, [worker, 'hold', redisUrl(), p, '3', '3000', '1000'], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('held') && resolve())
      child.once('exit', () => reject(new Error('worker exited')))
    })
    const redis = new Redis(redisUrl())
    try {
      expect(await redis.hget(`${p}{limits}:model:m`, 'dt')).toBe('3000')
      const a = limiter({
        models: { m: { tokensPerDay: 3_000, maxConcurrentRequests: 3 } },
        resourceEstimationsPerJob: { s: { estimatedUsedTokens: 1_000, estimatedNumberOfRequests: 1, maxWaitMS: { m: 0 } } },
        backend: backend(p, 50, 300),
      })
      await a.start()
      // While the worker lives, its reservations hold the day: nothing fits.
      await expect(a.queueJob({ jobId: 'early', job: async () => done('ran', 1_000) })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_NO_CAPACITY' })
      const t = performance.now()
      child.kill('SIGKILL')
      // Once it is dropped (instanceTimeoutMs), its 3,000 estimated tokens are given back.
      await expect.poll(() => redis.hget(`${p}{limits}:model:m`, 'dt'), { interval: 20, timeout: 3_000 }).toBe('0')
      expect(performance.now() - t).toBeLessThan(1_500)
      expect(await redis.keys(`${p}{limits}:grants:*`)).toEqual([]) // the worker's went with it
      const r = await Promise.all([1, 2, 3].map((i) => a.queueJob({ jobId: `after${i}`, job: async () => done('ran', 1_000) })))
      expect(r.map((x) => x.data)).toEqual(['ran', 'ran', 'ran'])
      expect(await redis.hget(`${p}{limits}:model:m`, 'dt')).toBe('3000')
      await a.stop()
    } finally {
      redis.disconnect()
    }
  })

  it('an instance evicted behind its back registers again at the next heartbeat', async () => {
    const p = prefix()
    const logs: string[] = []
    const a = limiter({
      models: { m: { tokensPerMinute: 100_000 } },
      backend: backend(p, 50, 300),
      onLog: (m) => logs.push(m),
    })
    await a.start()
    const redis = new Redis(redisUrl())
    try {
      const key = `${p}{limits}:instances`
      expect(await redis.hkeys(key)).toEqual([a.getInstanceId()])
      await redis.hdel(key, a.getInstanceId())
      await sleep(150)
      expect(await redis.hkeys(key)).toEqual([a.getInstanceId()])
      expect(logs.some((m) => m.includes('registered again'))).toBe(true)
      await a.stop()
      expect(await redis.hkeys(key)).toEqual([])
      // A stopped limiter refuses jobs until start() again.
      await expect(a.queueJob({ jobId: '0', job: async () => done('no', 1) })).rejects.toMatchObject({ code: codes.LIMITER_STOPPED })
      await a.start()
      // Jobs still run after an eviction (acquire registers too).
      await redis.del(key)
      expect(await a.queueJob({ jobId: '1', job: async () => done('ok', 1) })).toEqual({ data: 'ok', modelUsed: 'm' })
      expect(await redis.hkeys(key)).toEqual([a.getInstanceId()])
      await a.stop()
    } finally {
      redis.disconnect()
    }
  })

  it('sliding windows on Redis: two instances share every trailing minute', async () => {
    const p = prefix()
    let t = 1_700_000_040_000 + 50_000
    const now = () => t
    const cfg = (): LLMRateLimiterConfig => ({
      models: { m: { requestsPerMinute: 3, tokensPerMinute: 1_000 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 100, estimatedNumberOfRequests: 1, maxWaitMS: { m: 0 } } },
      backend: backend(p),
      windows: 'sliding',
      now,
    })
    const a = limiter(cfg())
    const b = limiter(cfg())
    await a.queueJob({ jobId: '1', job: async () => done(null, 50) })
    await b.queueJob({ jobId: '2', job: async () => done(null, 50) })
    await a.queueJob({ jobId: '3', job: async () => done(null, 400) })
    expect(a.getModelStats('m').tokensPerMinute!.current).toBe(500)
    t += 10_000
    await expect(b.queueJob({ jobId: '4', job: async () => done() })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_NO_CAPACITY' })
    t += 51_000
    await expect(b.queueJob({ jobId: '5', job: async () => done(null, 100) })).resolves.toMatchObject({ modelUsed: 'm' })
    expect(b.getModelStats('m').requestsPerMinute!.current).toBe(1)
    expect(b.getModelStats('m').tokensPerMinute!.current).toBe(100)
  })

  it('Redis down: a job fails with a StoreError and onError is called', async () => {
    const store = new RedisStore('redis://127.0.0.1:1', { connectTimeoutMs: 50, commandTimeoutMs: 50 })
    stores.push(store)
    const errors: string[] = []
    const l = limiter({ models: { m: {} }, backend: createRedisBackend({ client: store }) })
    await expect(l.queueJob({ jobId: '1', job: async () => done(), onError: (e: any) => errors.push(e.code) })).rejects.toMatchObject({
      name: 'StoreError',
    })
    expect(errors.length).toBe(1)
    expect(errors[0]).toMatch(/^ERR_TOLLGATE_STORE_/)
  })
})
