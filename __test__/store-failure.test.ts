// onStoreError: what each class answers while Redis is away, how fast, and that what was counted
// meanwhile reaches Redis once it is back. A real redis-server per test, paused with SIGSTOP or
// killed and restarted on the same port.
import { readFileSync } from 'node:fs'
import Redis from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { CostTracker, Guard, ProviderLimiter, Quota, RateLimiter, RedisStore, ResponseCache, SemanticCache, SessionStore, StoreError, TokenBudget, codes, createLLMRateLimiter, createRedisBackend, metrics } from '../lib/index.js'
import { ngramEmbedder } from './helpers/embedder.js'
import { startProxy } from './helpers/proxy.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { Clock } from './helpers/stores.js'

const TIMEOUTS = { connectTimeoutMs: 200, commandTimeoutMs: 150, storeRetryMs: 60 }
/** Every call settles within connect + command timeout; this leaves room for a loaded machine. */
const BOUND_MS = 200 + 150 + 400

let servers: RedisServer[] = []
let stores: RedisStore[] = []
afterEach(async () => {
  for (const s of servers) s.process.kill('SIGCONT')
  await Promise.all(stores.map((s) => s.close()))
  await Promise.all(servers.map((s) => s.stop()))
  servers = []
  stores = []
})

async function redis(): Promise<{ server: RedisServer; store: (o?: object) => RedisStore }> {
  const server = await startRedis()
  servers.push(server)
  return {
    server,
    store: (o = {}) => {
      const s = new RedisStore(server.url, { ...TIMEOUTS, ...o })
      stores.push(s)
      return s
    },
  }
}

/** Restarts a killed server on the same port (empty: no persistence). */
async function restart(server: RedisServer): Promise<RedisServer> {
  await server.stop()
  servers = servers.filter((s) => s !== server)
  const again = await startRedis([], false, server.port)
  servers.push(again)
  return again
}

/** Waits until calls stop skipping Redis (storeRetryMs) and the connection is back. */
const pastRetry = () => new Promise((r) => setTimeout(r, TIMEOUTS.storeRetryMs + 20))

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = Date.now()
  const r = await p
  return [r, Date.now() - t0]
}

describe('onStoreError', () => {
  it("refuses an unknown policy, and defaults to 'fail-closed'", async () => {
    const { store } = await redis()
    expect(() => new RateLimiter(store(), { onStoreError: 'ignore' as any })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new RedisStore('redis://127.0.0.1:1', { onStoreError: 'open' as any })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new TokenBudget(store(), { maxTokens: 1, storeRetryMs: -1 })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(new RateLimiter(store()).stats().policy).toBe('fail-closed')
    expect(new RateLimiter(store({ onStoreError: 'local' })).stats().policy).toBe('local')
    expect(new RateLimiter(store({ onStoreError: 'local' }), { onStoreError: 'fail-open' }).stats().policy).toBe('fail-open')
  })

  it("'fail-closed': every call rejects with a typed error within the bound, then Redis answers again", async () => {
    const { server, store } = await redis()
    const rl = new RateLimiter(store(), { maxRequests: 5, prefix: 'fc:' })
    expect((await rl.consume('k')).remaining).toBe(4)
    server.process.kill('SIGSTOP')
    const [errs, ms] = await timed(Promise.all(Array.from({ length: 20 }, () => rl.consume('k').catch((e) => e))))
    expect(ms).toBeLessThan(BOUND_MS)
    for (const e of errs) expect(e).toMatchObject({ name: 'StoreError', code: codes.STORE_TIMEOUT })
    // While the outage lasts, calls fail at once instead of each waiting for a timeout.
    const [again, fast] = await timed(rl.consume('k').catch((e) => e))
    expect(again).toBeInstanceOf(StoreError)
    expect(fast).toBeLessThan(50)
    server.process.kill('SIGCONT')
    await pastRetry()
    // The 20 timed-out consumes reached Redis when it resumed (a timeout does not mean "not
    // applied"): 1 + 4 admitted, the rest refused there.
    expect(await rl.check('k')).toMatchObject({ allowed: false, remaining: 0 })
    expect(rl.stats()).toMatchObject({ policy: 'fail-closed', pending: 0, errors: { [codes.STORE_TIMEOUT]: 20 } })
  })

  it("'fail-open': admits while Redis is away, says so, and replays the admitted requests", async () => {
    const { server, store } = await redis()
    const rl = new RateLimiter(store(), { maxRequests: 10, prefix: 'fo:', onStoreError: 'fail-open' })
    await rl.consume('k')
    await server.stop()
    const [r, ms] = await timed(rl.consume('k'))
    expect(ms).toBeLessThan(BOUND_MS)
    expect(r).toMatchObject({ allowed: true, fallback: 'fail-open', error: { code: codes.STORE_UNAVAILABLE } })
    expect(r.error).toBeInstanceOf(StoreError)
    for (let i = 0; i < 3; i++) expect(await rl.consume('k')).toMatchObject({ allowed: true, fallback: 'fail-open' })
    expect(rl.stats()).toMatchObject({ pending: 4, fallbacks: { 'fail-open': 4 } })
    await restart(server)
    // The queue is pushed by itself once Redis is back, with no further call.
    await expect.poll(() => rl.stats().pending, { interval: 20, timeout: 3_000 }).toBe(0)
    expect(await rl.flush()).toBe(true)
    // A fresh (restarted, empty) Redis now holds exactly the 4 requests admitted meanwhile.
    expect(await rl.check('k')).toMatchObject({ remaining: 6 })
    expect(rl.stats()).toMatchObject({ pending: 0, replayed: 4 })
  })

  it("'local': an in-process limiter with the same limits answers, and its admissions reach Redis", async () => {
    const { server, store } = await redis()
    const rl = new RateLimiter(store(), { maxRequests: 3, prefix: 'lo:', onStoreError: 'local' })
    await server.stop()
    const results = await Promise.all(Array.from({ length: 5 }, () => rl.consume('k')))
    expect(results.map((r) => [r.allowed, r.remaining, r.fallback])).toEqual([
      [true, 2, 'local'],
      [true, 1, 'local'],
      [true, 0, 'local'],
      [false, 0, 'local'],
      [false, 0, 'local'],
    ])
    expect(rl.stats()).toMatchObject({ decisions: 5, refused: { limit: 2 }, fallbacks: { local: 5 }, pending: 3 })
    await restart(server)
    await pastRetry()
    // Until the restarted server accepts connections, a flush leaves the queue as it is.
    await expect.poll(() => rl.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
    expect(await rl.consume('k')).toMatchObject({ allowed: false, remaining: 0 })
  })

  it('TokenBudget: counts made in an outage are replayed at least once, holds never collide', async () => {
    const { server, store } = await redis()
    const clock = new Clock()
    const b = new TokenBudget(store({ now: clock.now }), { maxTokens: 100, prefix: 'tb:', onStoreError: 'local' })
    await b.record('u', 10)
    const redisHold = (await b.reserve('u', 30)).hold!
    server.process.kill('SIGSTOP')
    // Timed out: Redis will run it when it resumes, and it is replayed too (at least once). The
    // twin starts from what Redis last said (10 used, 30 held), so it answers 30 used.
    expect(await b.record('u', 20)).toMatchObject({ fallback: 'local', used: 30, reserved: 30, error: { code: codes.STORE_TIMEOUT } })
    // Skipped while the outage lasts: answered locally at once, replayed exactly once.
    const local = await b.reserve('u', 35)
    expect(local).toMatchObject({ allowed: true, fallback: 'local', hold: { id: expect.stringMatching(/^local:/) } })
    expect((await b.reserve('u', 10)).allowed).toBe(false) // 30 + 30 + 35 + 10 > 100 locally
    expect(await b.settle(local.hold!, 5)).toMatchObject({ fallback: 'local', used: 35, reserved: 30 })
    expect(b.stats().pending).toBe(2)
    server.process.kill('SIGCONT')
    await pastRetry()
    await expect.poll(() => b.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
    // 10 + 20 (run on resume) + 20 (replayed) + 5 (the local hold settled); the Redis hold still counts.
    expect(await b.check('u')).toMatchObject({ used: 55, reserved: 30 })
    expect(await b.settle(redisHold, 1)).toMatchObject({ used: 56, reserved: 0 })
  })

  it("Quota 'local': a twin reserves while Redis is away; its holds, commits and rollbacks reach Redis in order", async () => {
    const { server, store } = await redis()
    const clock = new Clock()
    const keys = [{ id: 'a', rpm: 6_000, tpm: 1_000_000, rpd: 4 }]
    const q = new Quota({ store: store(), prefix: 'q:', bufferMs: 0, now: () => (clock.advance(20), clock.t), onStoreError: 'local' })
    const onRedis: any = await q.reserve('scope', keys, 10)
    expect(onRedis.ok).toBe(true)
    server.process.kill('SIGSTOP')
    // A check meets the outage (it counts nothing, so its late run on resume changes nothing).
    expect(await q.check('scope', keys, 1)).toMatchObject({ ok: true, fallback: 'local', error: { code: codes.STORE_TIMEOUT } })
    const held: any[] = []
    for (let i = 0; i < 4; i++) held.push(await q.reserve('scope', keys, 100))
    // The twin starts from Redis's last answer (1 of the day's 4 used): it grants 3, then refuses.
    expect(held.map((r) => [r.ok, r.fallback, r.hold?.local])).toEqual([
      [true, 'local', true],
      [true, 'local', true],
      [true, 'local', true],
      [false, 'local', undefined],
    ])
    expect(held[3]).toMatchObject({ reason: 'rpd' })
    expect(await q.reserve('scope', keys, 1)).toMatchObject({ ok: false, reason: 'rpd', fallback: 'local' })
    expect(await q.commit(held[0].hold!, { tokens: 7 })).toBe(true)
    expect(await q.rollback(held[1].hold!)).toBe(true)
    // A hold Redis has: committed locally for now (the twin does not know it), replayed later.
    expect(await q.commit(onRedis.hold!, { tokens: 5 })).toBe(false)
    server.process.kill('SIGCONT')
    await pastRetry()
    await expect.poll(() => q.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
    const after = await q.check('scope', keys, 1)
    expect(after.fallback).toBeUndefined()
    // Redis: its own hold (committed at 5) + 3 forced holds (one rolled back): 3 requests, and
    // 5 + 7 + 100 tokens.
    expect(after.checks[0]).toMatchObject({ dailyUsed: 3, tokenUsed: 112 })
    expect(q.stats()).toMatchObject({ pending: 0, replayed: 6, fallbacks: { local: 7 } })
  })

  it("SemanticCache: 'fail-open' misses, 'local' serves from an in-process twin, 'fail-closed' rejects", async () => {
    const { server, store } = await redis()
    const s = store()
    const { embed, calls } = ngramEmbedder()
    const make = (onStoreError: 'fail-closed' | 'fail-open' | 'local') => new SemanticCache(s, { embed, prefix: `sem:${onStoreError}:`, onStoreError })
    const [closed, open, local] = [make('fail-closed'), make('fail-open'), make('local')]
    const ask = (q: string) => [{ role: 'user', content: q }]
    await open.set('m', ask('What is the capital of France?'), 'Paris')
    expect(await open.get('m', ask('what is the capital of france'))).toMatchObject({ hit: true, response: 'Paris' })
    await server.stop()
    await expect(closed.get('m', ask('anything'))).rejects.toMatchObject({ name: 'StoreError', code: codes.STORE_UNAVAILABLE })
    expect(await open.get('m', ask('What is the capital of France?'))).toMatchObject({ hit: false, fallback: 'fail-open', error: { code: codes.STORE_UNAVAILABLE } })
    await open.set('m', ask('Another question'), 'ignored') // a no-op, not an error
    // 'local': what is cached meanwhile is served in-process, embedding once per set.
    const before = calls.length
    await local.set('m', ask('How tall is Mount Everest?'), '8,849 m')
    expect(calls.length - before).toBe(1)
    expect(await local.get('m', ask('how tall is mount everest'))).toMatchObject({ hit: true, response: '8,849 m', fallback: 'local' })
    expect(await local.stats()).toMatchObject({ entries: 1, policy: 'local', fallbacks: { local: 3 } })
    expect(await open.stats()).toMatchObject({ entries: null, policy: 'fail-open', hits: 1, misses: 1 })
  })

  for (const onStoreError of ['local', 'fail-open'] as const) {
    it(`the job limiter '${onStoreError}': jobs run while Redis is away, and their usage reaches Redis`, async () => {
      const { server, store } = await redis()
      const T = Date.UTC(2026, 10, 25, 12, 0, 20) // 20 s into a minute: one window throughout
      const make = (s: RedisStore, policy: 'fail-closed' | 'fail-open' | 'local', rpm = 5) =>
        createLLMRateLimiter({
          models: { m: { requestsPerMinute: rpm, tokensPerMinute: 1_000_000 } },
          resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10, estimatedNumberOfRequests: 1, maxWaitMS: { m: 0 } } },
          backend: createRedisBackend({ client: s, keyPrefix: `jl:${onStoreError}:` }),
          now: () => T,
          onStoreError: policy,
        })
      const job = async () => ({ requestCount: 1, inputTokens: 10, cachedTokens: 0, outputTokens: 0, data: 'ok' })
      const l = make(store(), onStoreError)
      await l.start()
      await server.stop()
      const results: unknown[] = []
      for (let i = 0; i < 7; i++) results.push(await l.queueJob({ jobId: `j${i}`, job }).then((r) => r.data, (e) => e.code))
      // 'local': the twin's 5 a minute, then refusals; 'fail-open': every job runs.
      const ran = onStoreError === 'local' ? 5 : 7
      expect(results).toEqual([...Array(ran).fill('ok'), ...Array(7 - ran).fill(codes.NO_CAPACITY)])
      // Queued: the usage of each job that ran, and the cancellation of the one acquire sent
      // to Redis (the first; later calls skip Redis): it got no reply, so it may yet be granted.
      expect(l.getStats().store).toMatchObject({ policy: onStoreError, pending: ran + 1, fallbacks: { [onStoreError]: 7 } })
      await restart(server)
      // Pushed by itself once Redis is back.
      await expect.poll(() => l.getStats().store!.pending, { interval: 20, timeout: 3_000 }).toBe(0)
      // Another instance, allowed 6 a minute, finds exactly the jobs that ran counted on the
      // restarted Redis: one more fits after the twin's 5, none after fail-open's 7.
      const other = make(store(), 'fail-closed', 6)
      expect(await other.queueJob({ jobId: 'x', job }).then((r) => r.data, (e) => e.code)).toBe(onStoreError === 'local' ? 'ok' : codes.NO_CAPACITY)
      await other.stop()
      await l.stop()
    })
  }

  it("the job limiter 'local': the twin starts from the global counts Redis last reported", async () => {
    const { server, store } = await redis()
    const T = Date.UTC(2026, 10, 25, 12, 0, 20)
    const l = createLLMRateLimiter({
      models: { m: { requestsPerMinute: 5, tokensPerMinute: 1_000_000 } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10, estimatedNumberOfRequests: 1, maxWaitMS: { m: 0 } } },
      backend: createRedisBackend({ client: store(), keyPrefix: 'jl:seed:' }),
      now: () => T,
      onStoreError: 'local',
    })
    const job = async () => ({ requestCount: 1, inputTokens: 10, cachedTokens: 0, outputTokens: 0, data: 'ok' })
    for (let i = 0; i < 3; i++) expect((await l.queueJob({ jobId: `r${i}`, job })).data).toBe('ok')
    await server.stop()
    const results: unknown[] = []
    for (let i = 0; i < 4; i++) results.push(await l.queueJob({ jobId: `j${i}`, job }).then((r) => r.data, (e) => e.code))
    // Redis last said 3 of the minute's 5 were used: the twin runs 2 (an empty one ran 5).
    expect(results).toEqual(['ok', 'ok', codes.NO_CAPACITY, codes.NO_CAPACITY])
    await l.stop()
  })

  describe('the job limiter on Redis counts exactly once when a reply is lost', () => {
    const T0 = Date.UTC(2026, 10, 25, 12, 0, 20)
    // Replays only when the test calls flush() (the timer's period is far away).
    const QUIET = { storeRetryMs: 60_000 }
    const model = (prefix: string) => `${prefix}{limits}:model:m`
    const grants = (prefix: string, instanceId: string) => `${prefix}{limits}:grants:${instanceId}`
    const fields = async (admin: Redis, key: string, kind: string) => Object.keys(await admin.hgetall(key)).filter((f) => f.startsWith(kind))
    const make = (s: RedisStore, prefix: string, clock: Clock, maxConcurrentRequests = 1, instanceId = 'first') =>
      createLLMRateLimiter({
        instanceId,
        models: { m: { tokensPerMinute: 1_000, requestsPerMinute: 100, maxConcurrentRequests } },
        resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10, estimatedNumberOfRequests: 1, maxWaitMS: { m: 0 } } },
        // Instances stay live across the test's minutes (the clock moves, heartbeats do not).
        backend: createRedisBackend({ client: s, keyPrefix: prefix, instanceTimeoutMs: 600_000 }),
        now: clock.now,
      })
    const usage = (tokens: number) => ({ requestCount: 1, inputTokens: tokens, cachedTokens: 0, outputTokens: 0, data: 'ok' })
    /** SIGSTOP, and wait until the kernel shows the server stopped (the signal is asynchronous). */
    const pause = async (server: RedisServer) => {
      server.process.kill('SIGSTOP')
      await expect.poll(() => readFileSync(`/proc/${server.process.pid}/stat`, 'utf8').split(') ')[1][0], { interval: 1, timeout: 2_000 }).toBe('T')
    }

    it('a release that timed out, run late by Redis and sent again, settles once', async () => {
      const { server, store } = await redis()
      const admin = new Redis(server.url)
      const clock = new Clock(T0)
      const l = make(store(QUIET), 'once:rel:', clock)
      let started!: () => void
      const running = new Promise<void>((r) => (started = r))
      let finish!: () => void
      const gate = new Promise<void>((r) => (finish = r))
      const done = l.queueJob({
        jobId: 'a',
        job: async () => {
          started()
          await gate
          return usage(30) // 20 over the estimate
        },
      })
      await running
      await pause(server)
      finish()
      // The job's result is not held back by the release: it times out and is queued.
      expect((await done).data).toBe('ok')
      expect(l.getStats().store).toMatchObject({ pending: 1, errors: { [codes.STORE_TIMEOUT]: 1 } })
      server.process.kill('SIGCONT')
      // Redis runs the release it had received, then gets it again from the queue (as often as
      // it takes: each settles nothing more).
      await expect.poll(() => l.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
      expect(l.getStats().store).toMatchObject({ pending: 0, replayed: 1 })
      const h = await admin.hgetall(model('once:rel:'))
      // 10 reserved + 20 over = 30 (settled twice it would be 50); no grant or slot left.
      expect(h.mt).toBe('30')
      expect(await fields(admin, model('once:rel:'), 'c:')).toEqual([])
      expect(await fields(admin, grants('once:rel:', 'first'), 'g:')).toEqual([])
      // The slot is free: the next job runs at once.
      expect((await l.queueJob({ jobId: 'b', job: async () => usage(10) })).data).toBe('ok')
      expect(await admin.hget(model('once:rel:'), 'mt')).toBe('40')
      await l.stop()
      admin.disconnect()
    })

    it('an acquire that timed out and was granted late is given back, in the newer window', async () => {
      const { server, store } = await redis()
      const admin = new Redis(server.url)
      const clock = new Clock(T0)
      // Two jobs at once across all instances.
      const l = make(store(QUIET), 'once:acq:', clock, 2)
      await l.start() // connected, script loaded
      await pause(server)
      // 'fail-closed': the job fails with the timeout; its acquire stays in Redis's input.
      await expect(l.queueJob({ jobId: 'a', job: async () => usage(10) })).rejects.toMatchObject({ code: codes.STORE_TIMEOUT })
      expect(l.getStats().store).toMatchObject({ pending: 1 })
      clock.advance(60_000) // the next minute
      server.process.kill('SIGCONT')
      // Redis grants the acquire late, in the first minute: a slot and 10 tokens nobody uses.
      await expect.poll(() => admin.hget(model('once:acq:'), 'mt'), { interval: 10, timeout: 2_000 }).toBe('10')
      // Another instance runs a job in the second minute (the late grant holds the other slot).
      const other = make(store(), 'once:acq:', clock, 2, 'other')
      expect((await other.queueJob({ jobId: 'o', job: async () => usage(10) })).data).toBe('ok')
      expect(await admin.hmget(model('once:acq:'), 'ms', 'mt', 'dt')).toEqual([String(T0 - (T0 % 60_000) + 60_000), '10', '20'])
      expect(await fields(admin, grants('once:acq:', 'first'), 'g:')).toHaveLength(1)
      // The cancellation, sent with the first minute's clock, gives the late grant back and
      // leaves the second minute's count as it is (a window never goes back).
      await expect.poll(() => l.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
      const h = await admin.hgetall(model('once:acq:'))
      // The day gets the late grant's 10 tokens back: 20 - 10.
      expect([h.ms, h.mt, h.dt]).toEqual([String(T0 - (T0 % 60_000) + 60_000), '10', '10'])
      expect(await fields(admin, model('once:acq:'), 'c:')).toEqual([])
      expect(await fields(admin, grants('once:acq:', 'first'), 'g:')).toEqual([])
      // Its slot is free again: a job of each instance runs at the same time.
      let finish!: () => void
      const gate = new Promise<void>((r) => (finish = r))
      const first = l.queueJob({ jobId: 'b', job: async () => (await gate, usage(10)) })
      await expect.poll(() => admin.hget(model('once:acq:'), 'mt'), { interval: 10, timeout: 2_000 }).toBe('20')
      expect((await other.queueJob({ jobId: 'p', job: async () => usage(10) })).data).toBe('ok')
      finish()
      expect((await first).data).toBe('ok')
      await Promise.all([l.stop(), other.stop()])
      admin.disconnect()
    })
  })

  it("ProviderLimiter 'local': points taken in-process while Redis is away are taken there afterwards", async () => {
    const { server, store } = await redis()
    const clock = new Clock()
    const pl = new ProviderLimiter(store({ now: clock.now }), { providers: { openai: { points: 3, duration: 60, keyPrefix: 'pl' } }, onStoreError: 'local' })
    await server.stop()
    const got = []
    for (let i = 0; i < 4; i++) got.push(await pl.tryConsume('openai'))
    expect(got.map((d) => [d.allowed, d.remaining, d.fallback])).toEqual([
      [true, 2, 'local'],
      [true, 1, 'local'],
      [true, 0, 'local'],
      [false, 0, 'local'],
    ])
    await restart(server)
    await expect.poll(() => pl.stats().pending, { interval: 20, timeout: 3_000 }).toBe(0)
    // The restarted Redis holds the 3 points taken meanwhile: nothing is left this period.
    expect(await pl.tryConsume('openai')).toMatchObject({ allowed: false, remaining: 0 })
    expect((await pl.tryConsume('openai')).fallback).toBeUndefined()
    expect(pl.stats()).toMatchObject({ replayed: 3, refused: { points: 3 } })
  })

  it('every call settles within the bound under each policy, with no unhandled rejection', async () => {
    const { server, store } = await redis()
    const unhandled: unknown[] = []
    const onUnhandled = (e: unknown) => unhandled.push(e)
    process.on('unhandledRejection', onUnhandled)
    try {
      const s = store()
      const make = (onStoreError: 'fail-closed' | 'fail-open' | 'local') => ({
        rl: new RateLimiter(s, { prefix: `all:${onStoreError}:`, onStoreError }),
        tb: new TokenBudget(s, { maxTokens: 10, prefix: `all:${onStoreError}:`, onStoreError }),
        cache: new ResponseCache(s, { prefix: `all:${onStoreError}:`, onStoreError }),
        sessions: new SessionStore(s, { prefix: `all:${onStoreError}:`, onStoreError }),
        cost: new CostTracker(s, { prefix: `all:${onStoreError}:`, onStoreError, onAlert: () => {} }),
        quota: new Quota({ store: s, prefix: `all:${onStoreError}:`, onStoreError }),
      })
      const classes = [make('fail-closed'), make('fail-open'), make('local')]
      server.process.kill('SIGSTOP')
      const calls = classes.flatMap((c) => [
        c.rl.consume('k'),
        c.tb.reserve('k', 1),
        c.cache.get('m', [{ q: 1 }]),
        c.cache.set('m', [{ q: 1 }], 'a'),
        c.sessions.append('s', { role: 'user' }),
        c.sessions.load('s'),
        c.cost.reserve(0.01),
        c.cost.recordCost(0.01),
        c.quota.reserve('s', [{ id: 'k', rpm: 60, tpm: 1000, rpd: 10 }], 1),
      ])
      const [settled, ms] = await timed(Promise.allSettled(calls))
      expect(ms).toBeLessThan(BOUND_MS)
      const closed = settled.slice(0, 9)
      for (const r of closed) expect(r).toMatchObject({ status: 'rejected', reason: { code: codes.STORE_TIMEOUT } })
      for (const r of settled.slice(9)) expect(r.status).toBe('fulfilled')
      const [open, local] = [settled.slice(9, 18), settled.slice(18)].map((l) => l.map((r) => (r as PromiseFulfilledResult<any>).value))
      expect(open[0]).toMatchObject({ allowed: true, fallback: 'fail-open' })
      expect(open[1]).toMatchObject({ allowed: true, fallback: 'fail-open' })
      expect(open[2]).toBeNull() // a cache miss
      expect(local[2]).toBeNull()
      expect(local[5]).toMatchObject({ messages: [{ role: 'user' }] }) // the local session kept the append
      expect(local[6]).toMatchObject({ allowed: true, fallback: 'local' })
      expect(open[8]).toMatchObject({ ok: true, fallback: 'fail-open', hold: { local: true } })
      expect(local[8]).toMatchObject({ ok: true, fallback: 'local', hold: { local: true } })
    } finally {
      server.process.kill('SIGCONT')
      await new Promise((r) => setTimeout(r, 20))
      process.off('unhandledRejection', onUnhandled)
    }
    expect(unhandled).toEqual([])
  })

  for (const onStoreError of ['fail-closed', 'fail-open', 'local'] as const) {
    it(`'${onStoreError}': connections cut by a proxy mid-load — every call settles in bound, no count is lost`, async () => {
      const { server } = await redis()
      const proxy = await startProxy(server.port)
      const unhandled: unknown[] = []
      const onUnhandled = (e: unknown) => unhandled.push(e)
      process.on('unhandledRejection', onUnhandled)
      const store = new RedisStore(proxy.url, TIMEOUTS)
      stores.push(store)
      const b = new TokenBudget(store, { maxTokens: 1_000_000, prefix: `cut:${onStoreError}:`, onStoreError })
      let resolved = 0
      let rejected = 0
      let slowest = 0
      const one = async () => {
        const t0 = Date.now()
        try {
          await b.record('k', 1)
          resolved++
        } catch (e: any) {
          expect(e).toBeInstanceOf(StoreError)
          rejected++
        }
        slowest = Math.max(slowest, Date.now() - t0)
      }
      try {
        // 20 waves of 25 concurrent records; the proxy cuts every connection during wave 5 and
        // refuses new ones during waves 10–12.
        for (let wave = 0; wave < 20; wave++) {
          const calls = Array.from({ length: 25 }, one)
          if (wave === 5) setTimeout(() => proxy.cut(), 1)
          if (wave === 10) proxy.refuse()
          if (wave === 13) proxy.open()
          await Promise.all(calls)
          if (wave >= 10 && wave < 13) await new Promise((r) => setTimeout(r, 30))
        }
        expect(slowest).toBeLessThan(BOUND_MS)
        expect(resolved + rejected).toBe(500)
        if (onStoreError === 'fail-closed') expect(rejected).toBeGreaterThan(0)
        else expect(rejected).toBe(0)
        // The connection comes back on its own (the first call after the outage may still meet
        // the socket the proxy reset, and fails over to the policy once more).
        const answeredBy = () => b.check('k').then((r) => r.fallback ?? 'redis', (e) => e.code)
        await expect.poll(answeredBy, { interval: 20, timeout: 3_000 }).toBe('redis')
        expect(await b.flush()).toBe(true)
        const { used } = await b.check('k')
        // Nothing lost: every answered record is in Redis. A call whose reply was cut may have
        // been applied too (fail-closed rejected it; the others replayed it: at least once).
        const failedInFlight = (b.stats().errors[codes.STORE_UNAVAILABLE] ?? 0) + (b.stats().errors[codes.STORE_TIMEOUT] ?? 0)
        expect(used).toBeGreaterThanOrEqual(resolved)
        expect(used).toBeLessThanOrEqual(resolved + failedInFlight)
        if (onStoreError !== 'fail-closed') expect(b.stats()).toMatchObject({ pending: 0 })
      } finally {
        process.off('unhandledRejection', onUnhandled)
        await proxy.close()
      }
      expect(unhandled).toEqual([])
    })
  }

  for (const onStoreError of ['fail-closed', 'fail-open', 'local'] as const) {
    it(`'${onStoreError}': Redis killed mid-load and restarted on its port — every call settles, nothing answered is lost`, async () => {
      const { server: first, store } = await redis()
      let server = first
      const unhandled: unknown[] = []
      const onUnhandled = (e: unknown) => unhandled.push(e)
      process.on('unhandledRejection', onUnhandled)
      const b = new TokenBudget(store(), { maxTokens: 1_000_000, prefix: `kill:${onStoreError}:`, onStoreError })
      let afterRestart = 0
      let answeredLocally = 0
      let rejected = 0
      let slowest = 0
      let restarted = false
      try {
        for (let wave = 0; wave < 16; wave++) {
          if (wave === 4) await server.stop() // killed while the previous waves' connection is live
          if (wave === 8) {
            server = await restart(server)
            restarted = true
            await pastRetry()
          }
          const outcomes = await Promise.all(
            Array.from({ length: 20 }, async () => {
              const t0 = Date.now()
              const r = await b.record('k', 1).then(
                (x) => (x.fallback ? 'local' : 'redis'),
                (e) => {
                  expect(e).toBeInstanceOf(StoreError)
                  return 'rejected'
                },
              )
              slowest = Math.max(slowest, Date.now() - t0)
              return r
            }),
          )
          for (const o of outcomes) {
            if (o === 'rejected') rejected++
            else if (o === 'local') answeredLocally++
            else if (restarted) afterRestart++
          }
        }
        expect(slowest).toBeLessThan(BOUND_MS)
        if (onStoreError === 'fail-closed') expect(answeredLocally).toBe(0)
        else expect(rejected).toBe(0)
        expect(await b.flush()).toBe(true)
        // The restarted Redis lost what it held before the kill; it holds every record answered
        // since, and every record answered by the policy meanwhile (replayed) — exactly, since
        // no call was in flight when Redis died between two waves.
        expect((await b.check('k')).used).toBe(afterRestart + answeredLocally)
      } finally {
        process.off('unhandledRejection', onUnhandled)
      }
      expect(unhandled).toEqual([])
    })
  }

  it('metrics() exposes decisions, refusals, store errors and fallbacks in the Prometheus format', async () => {
    const { server, store } = await redis()
    const rl = new RateLimiter(store(), { maxRequests: 1, prefix: 'metrics-test:', onStoreError: 'local' })
    await rl.consume('k')
    await rl.consume('k')
    await server.stop()
    await rl.consume('x')
    const text = metrics()
    expect(text).toContain('# TYPE tollgate_decisions_total counter')
    expect(text).toContain('tollgate_decisions_total{class="RateLimiter",prefix="metrics-test:"} 3')
    expect(text).toContain('tollgate_redis_calls_total{class="RateLimiter",prefix="metrics-test:"} 3')
    expect(text).toContain('tollgate_refusals_total{class="RateLimiter",prefix="metrics-test:",reason="limit"} 1')
    expect(text).toContain(`tollgate_store_errors_total{class="RateLimiter",prefix="metrics-test:",code="${codes.STORE_UNAVAILABLE}"} 1`)
    expect(text).toContain('tollgate_fallbacks_total{class="RateLimiter",prefix="metrics-test:",policy="local"} 1')
    // Every line is a comment or `name{labels} value`.
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+\{[^}]*\} \d+)$/)
  })
})

describe('Guard on a Redis that goes away', () => {
  const limits: any[] = [
    { id: 'rpm', scope: (c: any) => c.user, requests: 3, per: '1m' },
    { id: 'tpd', scope: (c: any) => c.user, tokens: 10_000, per: 'day' },
    { id: 'conc', scope: () => 'm', concurrent: 2 },
  ]
  const req = { model: 'gpt-4o-mini', tokens: 100, maxTokens: 100 }
  const used = { inputTokens: 60, outputTokens: 40 }

  it("'fail-closed' rejects with the typed error; 'fail-open' admits, and what the calls used reaches Redis", async () => {
    const { server, store } = await redis()
    const closed = new Guard({ store: store(), prefix: 'gfc:', limits })
    const open = new Guard({ store: store(), prefix: 'gfo:', limits, onStoreError: 'fail-open' })
    await (await open.acquire({ user: 'u' }, req)).settle(used)
    await server.stop()
    await expect(closed.acquire({ user: 'u' }, req)).rejects.toMatchObject({ name: 'StoreError', code: codes.STORE_UNAVAILABLE })
    const ds = []
    for (let i = 0; i < 3; i++) ds.push(await open.acquire({ user: 'u' }, req))
    for (const d of ds) expect(d).toMatchObject({ ok: true, fallback: 'fail-open', remaining: { rpm: 3, tpd: 10_000, conc: 2 } })
    await ds[0].settle(used)
    await ds[1].settle({ inputTokens: 10, outputTokens: 0 })
    await ds[2].cancel() // never made: nothing to count
    expect(open.stats()).toMatchObject({ pending: 2, fallbacks: { 'fail-open': 3 } })
    await restart(server)
    await pastRetry()
    await expect.poll(() => open.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
    // The restarted (empty) Redis holds exactly the two calls made during the outage.
    expect((await open.peek({ user: 'u' })).remaining).toEqual({ rpm: 1, tpd: 10_000 - 100 - 10, conc: 2 })
    expect(open.stats()).toMatchObject({ pending: 0, replayed: 2 })
  })

  it('a settle that cannot reach Redis is queued, and counts the real usage once it answers', async () => {
    const { server, store } = await redis()
    const g = new Guard({ store: store(), prefix: 'gse:', limits, onStoreError: 'fail-open' })
    const a = await g.acquire({ user: 'u' }, req) // held in Redis
    expect(a.fallback).toBeUndefined()
    await server.stop()
    await a.settle({ inputTokens: 150, outputTokens: 50 })
    expect((await g.peek({ user: 'u' })).fallback).toBe('fail-open')
    expect(g.stats()).toMatchObject({ pending: 1 })
    // The restarted server is empty: the hold is gone, so the usage is recorded as made.
    const again = await restart(server)
    await pastRetry()
    await expect.poll(() => g.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
    expect((await g.peek({ user: 'u' })).remaining).toEqual({ rpm: 2, tpd: 10_000 - 200, conc: 2 })
    expect(again.port).toBe(server.port)
  })

  it("'local': a twin with the same limits decides, refuses what does not fit, and its usage reaches Redis", async () => {
    const { server, store } = await redis()
    const g = new Guard({ store: store(), prefix: 'glo:', limits, onStoreError: 'local' })
    await server.stop()
    const a = await g.acquire({ user: 'u' }, req)
    const b = await g.acquire({ user: 'u' }, req)
    const c = await g.acquire({ user: 'u' }, req)
    expect([a, b, c].map((d) => [d.ok, d.limit, d.fallback])).toEqual([
      [true, null, 'local'],
      [true, null, 'local'],
      [false, 'conc', 'local'],
    ])
    await a.settle(used)
    const d = await g.acquire({ user: 'u' }, req)
    expect(d).toMatchObject({ ok: true, fallback: 'local', remaining: { rpm: 0, conc: 0 } })
    expect((await g.acquire({ user: 'u' }, req)).limit).toBe('rpm')
    await b.cancel()
    await d.settle(used)
    await expect(d.settle(used)).rejects.toMatchObject({ code: codes.DECISION_ENDED })
    expect(g.stats()).toMatchObject({ pending: 2, refused: { conc: 1, rpm: 1 } })
    await restart(server)
    await pastRetry()
    await expect.poll(() => g.flush(), { interval: 20, timeout: 3_000 }).toBe(true)
    expect((await g.peek({ user: 'u' })).remaining).toEqual({ rpm: 1, tpd: 10_000 - 200, conc: 2 })
  })
})
