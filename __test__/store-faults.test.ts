// Redis faults that are not plain outages, and outages as a request with several classes meets
// them: a hung server (SIGSTOP), eviction and a full server, errors that are not outages, the
// first call after a restart, flushing before exit, malformed URLs. Real redis-server processes.
import { readFileSync } from 'node:fs'
import Redis from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { CostTracker, ProviderLimiter, Quota, RateLimiter, RedisStore, ResponseCache, SemanticCache, StoreError, TokenBudget, codes, createLLMRateLimiter, createRedisBackend, metrics } from '../lib/index.js'
import { ngramEmbedder } from './helpers/embedder.js'
import { clusterUrls } from './helpers/stores.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'

type Policy = 'fail-closed' | 'fail-open' | 'local'
const TIMEOUTS = { connectTimeoutMs: 200, commandTimeoutMs: 250 }
const BOUND_MS = TIMEOUTS.connectTimeoutMs + TIMEOUTS.commandTimeoutMs

let servers: RedisServer[] = []
let stores: RedisStore[] = []
afterEach(async () => {
  for (const s of servers) s.process.kill('SIGCONT')
  await Promise.all(stores.map((s) => s.close()))
  await Promise.all(servers.map((s) => s.stop()))
  servers = []
  stores = []
})

async function server(args: string[] = []): Promise<RedisServer> {
  const s = await startRedis(args)
  servers.push(s)
  return s
}

function open(url: string, o: object = {}): RedisStore {
  const s = new RedisStore(url, { ...TIMEOUTS, ...o })
  stores.push(s)
  return s
}

async function restart(s: RedisServer, args: string[] = []): Promise<RedisServer> {
  await s.stop()
  servers = servers.filter((x) => x !== s)
  const again = await startRedis(args, false, s.port)
  servers.push(again)
  return again
}

/** SIGSTOP, and wait until the kernel shows the server stopped (the signal is asynchronous). */
async function pause(s: RedisServer) {
  s.process.kill('SIGSTOP')
  await expect.poll(() => readFileSync(`/proc/${s.process.pid}/stat`, 'utf8').split(') ')[1][0], { interval: 1, timeout: 2_000 }).toBe('T')
}

/** Collects process warnings with tollgate's eviction code while `body` runs. */
async function warningsDuring(body: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = []
  const on = (w: Error) => {
    if ((w as any).code === 'TOLLGATE_REDIS_EVICTION') seen.push(w)
  }
  process.on('warning', on)
  try {
    await body()
    await new Promise((r) => setImmediate(r)) // warnings are emitted on the next tick
  } finally {
    process.off('warning', on)
  }
  return seen
}

describe('a hung Redis (SIGSTOP): one health state per store', () => {
  for (const policy of ['fail-closed', 'fail-open', 'local'] as const) {
    it(`'${policy}': a request through three classes pays one timeout per outage, not one per class`, async () => {
      const redis = await server()
      const store = open(redis.url, { onStoreError: policy, storeRetryMs: 400 })
      const rl = new RateLimiter(store, { maxRequests: 100, prefix: `hang:${policy}:rl:` })
      const tb = new TokenBudget(store, { maxTokens: 10_000, prefix: `hang:${policy}:tb:` })
      const cache = new ResponseCache(store, { prefix: `hang:${policy}:c:` })
      const request = async () => {
        const t0 = Date.now()
        const settle = <T>(p: Promise<T>) => p.then((r) => r, (e) => e)
        const out = [await settle(rl.consume('u')), await settle(tb.reserve('u', 10)), await settle(cache.get('m', [{ q: 1 }]))]
        return { out, ms: Date.now() - t0 }
      }
      expect((await request()).out[0]).toMatchObject({ allowed: true })
      await pause(redis)
      const requests = []
      for (let i = 0; i < 5; i++) requests.push(await request())
      const calls = rl.stats().redisCalls + tb.stats().redisCalls + cache.stats().redisCalls
      // The first class's call times out; every later call of every class skips Redis.
      expect(requests[0].ms).toBeGreaterThanOrEqual(TIMEOUTS.commandTimeoutMs - 5)
      expect(requests[0].ms).toBeLessThan(BOUND_MS + 300)
      for (const r of requests.slice(1)) expect(r.ms).toBeLessThan(50)
      const total = requests.reduce((n, r) => n + r.ms, 0)
      expect(total).toBeLessThan(BOUND_MS + 300)
      expect(calls).toBe(4) // 3 before the pause + the one that timed out
      for (const { out } of requests) {
        if (policy === 'fail-closed') {
          for (const e of out) expect(e).toBeInstanceOf(StoreError)
          expect(out[0].code).toBe(codes.STORE_TIMEOUT)
        } else {
          expect(out[0]).toMatchObject({ allowed: true, fallback: policy })
          expect(out[1]).toMatchObject({ allowed: true, fallback: policy })
          expect(out[2]).toBeNull()
        }
      }
      expect(store.health()).toMatchObject({ status: 'down', outage: { code: codes.STORE_TIMEOUT } })
      expect(rl.stats().storeStatus).toBe('down')
      // Probes (one PING per interval), not user calls, find out when Redis is back.
      await expect.poll(() => store.health().probes, { interval: 20, timeout: 3_000 }).toBeGreaterThan(0)
      redis.process.kill('SIGCONT')
      await expect.poll(() => store.health().status, { interval: 20, timeout: 3_000 }).toBe('up')
      const after = await request()
      expect(after.out[0]).toMatchObject({ allowed: true })
      expect(after.out[0].fallback).toBeUndefined()
      expect(after.out[1].fallback).toBeUndefined()
      expect(after.ms).toBeLessThan(100)
      await expect.poll(() => store.health().pending, { interval: 20, timeout: 3_000 }).toBe(0)
    })
  }

  it('the default retry interval is well above the command timeout', () => {
    expect(new RedisStore('redis://127.0.0.1:1').health().retryMs).toBe(3_000)
    expect(new RedisStore('redis://127.0.0.1:1', { commandTimeoutMs: 2_000 }).health().retryMs).toBe(6_000)
    expect(new RedisStore('redis://127.0.0.1:1', { commandTimeoutMs: 100 }).health().retryMs).toBe(1_000)
  })
})

describe('eviction: maxmemory-policy is read and reported', () => {
  for (const policy of ['allkeys-lru', 'volatile-lru'] as const) {
    it(`${policy}: one warning per store, the policy in health() and stats(); 'error' refuses every call`, async () => {
      const redis = await server(['--maxmemory', '64mb', '--maxmemory-policy', policy])
      const store = open(redis.url)
      const rl = new RateLimiter(store, { maxRequests: 5, prefix: `ev:${policy}:` })
      const warnings = await warningsDuring(async () => {
        await rl.consume('a')
        await rl.consume('b')
      })
      expect(warnings).toHaveLength(1)
      expect(warnings[0].message).toContain(policy)
      expect(warnings[0].message).toContain('noeviction')
      expect(store.health()).toMatchObject({ maxmemoryPolicy: policy, maxmemory: 64 * 1024 * 1024, evicts: true })
      expect(rl.stats().maxmemoryPolicy).toBe(policy)
      // 'error': refused under every policy, with no command run.
      for (const onStoreError of ['fail-closed', 'fail-open', 'local'] as const) {
        const strict = open(redis.url, { evictionPolicy: 'error', onStoreError })
        const l = new RateLimiter(strict, { maxRequests: 5, prefix: `ev:${policy}:strict:` })
        await expect(l.consume('a')).rejects.toMatchObject({ name: 'StoreError', code: codes.STORE_EVICTION })
        expect(l.stats()).toMatchObject({ fallbacks: { 'fail-open': 0, local: 0 }, pending: 0 })
      }
      const admin = new Redis(redis.url)
      expect(await admin.exists(`ev:${policy}:strict:a`)).toBe(0)
      admin.disconnect()
      // 'ignore': nothing read, nothing said.
      const quiet = open(redis.url, { evictionPolicy: 'ignore' })
      const q = new RateLimiter(quiet, { prefix: `ev:${policy}:quiet:` })
      expect(await warningsDuring(async () => void (await q.consume('a')))).toHaveLength(0)
      expect(quiet.health()).toMatchObject({ maxmemoryPolicy: null, evicts: false })
    })
  }

  it('noeviction: no warning; the policy is read again after an outage (a restart with another config)', async () => {
    let redis = await server(['--maxmemory-policy', 'noeviction'])
    const store = open(redis.url, { storeRetryMs: 50 })
    const rl = new RateLimiter(store, { prefix: 'ev:no:' })
    expect(await warningsDuring(async () => void (await rl.consume('a')))).toHaveLength(0)
    expect(store.health()).toMatchObject({ maxmemoryPolicy: 'noeviction', evicts: false })
    redis = await restart(redis, ['--maxmemory-policy', 'allkeys-lfu'])
    const warnings = await warningsDuring(async () => {
      await rl.consume('a').catch(() => {}) // may meet the outage (then a probe reconnects)
      await expect.poll(() => store.health().maxmemoryPolicy, { interval: 20, timeout: 3_000 }).toBe('allkeys-lfu')
    })
    expect(warnings).toHaveLength(1)
  })

  it('a full server under noeviction (OOM) is never answered by the policy: it rejects, and says why', async () => {
    const redis = await server(['--maxmemory-policy', 'noeviction'])
    const admin = new Redis(redis.url)
    await admin.set('ballast', 'x'.repeat(4 * 1024 * 1024))
    await admin.config('SET', 'maxmemory', '1mb')
    for (const onStoreError of ['fail-closed', 'fail-open', 'local'] as const) {
      const rl = new RateLimiter(open(redis.url, { onStoreError }), { maxRequests: 5, prefix: `oom:${onStoreError}:` })
      const errs = await Promise.all(Array.from({ length: 20 }, () => rl.consume('k').then(() => null, (e) => e)))
      for (const e of errs) expect(e).toMatchObject({ name: 'StoreError', code: codes.STORE_OOM })
      expect(rl.stats()).toMatchObject({ decisions: 0, fallbacks: { 'fail-open': 0, local: 0 }, pending: 0, storeStatus: 'up' })
    }
    admin.disconnect()
  })
})

describe('errors that are not outages reject under every policy', () => {
  it('a wrong or missing password: ERR_TOLLGATE_STORE_AUTH, never admitted, nothing queued, no secret shown', async () => {
    const redis = await server(['--requirepass', 'Right-Secret-1'])
    for (const onStoreError of ['fail-closed', 'fail-open', 'local'] as const) {
      for (const url of [`redis://:Wrong-Secret-2@127.0.0.1:${redis.port}`, redis.url]) {
        const store = open(url, { onStoreError })
        const rl = new RateLimiter(store, { maxRequests: 5, prefix: 'auth:' })
        const errs = await Promise.all(Array.from({ length: 50 }, () => rl.consume('k').then(() => null, (e) => e)))
        for (const e of errs) {
          expect(e).toMatchObject({ name: 'StoreError', code: codes.STORE_AUTH })
          expect(`${e.message} ${e.stack} ${JSON.stringify(e)}`).not.toMatch(/Secret/)
        }
        expect(rl.stats()).toMatchObject({ decisions: 0, fallbacks: { 'fail-open': 0, local: 0 }, pending: 0, storeStatus: 'up' })
        expect(JSON.stringify(store.health())).not.toMatch(/Secret/)
      }
    }
    // The right password works.
    const ok = new RateLimiter(open(`redis://:Right-Secret-1@127.0.0.1:${redis.port}`), { maxRequests: 5, prefix: 'auth:' })
    expect(await ok.consume('k')).toMatchObject({ allowed: true, remaining: 4 })
  })

  it('a key of another type (WRONGTYPE): ERR_TOLLGATE_STORE_ERROR under fail-open, not 1,000 admissions', async () => {
    const redis = await server()
    const admin = new Redis(redis.url)
    await admin.set('wt:k', 'not a list')
    await admin.hset('wt:b:k', 'u', 'nonsense', 'h:1', 'x')
    const store = open(redis.url, { onStoreError: 'fail-open' })
    const rl = new RateLimiter(store, { maxRequests: 5, prefix: 'wt:' })
    const results = await Promise.all(Array.from({ length: 1_000 }, () => rl.consume('k').then((r) => r, (e) => e)))
    const admitted = results.filter((r) => r && r.allowed === true).length
    expect(admitted).toBe(0)
    for (const e of results) expect(e).toMatchObject({ name: 'StoreError', code: codes.STORE_ERROR })
    expect(rl.stats()).toMatchObject({ fallbacks: { 'fail-open': 0 }, pending: 0 })
    expect(store.health().status).toBe('up')
    // Other keys on the same store are unaffected.
    expect(await rl.consume('other')).toMatchObject({ allowed: true, remaining: 4 })
    admin.disconnect()
  })
})

describe('after a restart', () => {
  it('the very first call of each class succeeds (no broken pipe left over), even when no call saw the outage', async () => {
    let redis = await server()
    const store = open(redis.url)
    const rl = new RateLimiter(store, { maxRequests: 5, prefix: 'first:rl:' })
    const tb = new TokenBudget(store, { maxTokens: 100, prefix: 'first:tb:' })
    const cache = new ResponseCache(store, { prefix: 'first:c:' })
    await Promise.all([rl.consume('k'), tb.record('k', 1), cache.set('m', [1], 'a')])
    redis = await restart(redis) // killed while idle: the connection is dead, no call knows
    expect(await rl.consume('k')).toMatchObject({ allowed: true, remaining: 4 })
    expect(await tb.record('k', 7)).toMatchObject({ used: 7 })
    expect(await cache.get('m', [1])).toBeNull()
    for (const c of [rl, tb, cache]) expect(c.stats().errors).toEqual({})
  })

  for (const policy of ['fail-open', 'local'] as const) {
    it(`'${policy}': counts queued during the outage — the first flush() after the restart pushes them all`, async () => {
      let redis = await server()
      const store = open(redis.url, { onStoreError: policy, storeRetryMs: 60_000 }) // no probe during the test
      const tb = new TokenBudget(store, { maxTokens: 1_000_000, prefix: `fl:${policy}:` })
      await tb.record('k', 1)
      await redis.stop()
      for (let i = 0; i < 1_500; i++) await tb.record('k', 1)
      expect(tb.stats()).toMatchObject({ pending: 1_500 })
      // While Redis is down, flush() tries within its bound and says it could not; each try counts.
      const t0 = Date.now()
      expect(await tb.flush()).toBe(false)
      expect(Date.now() - t0).toBeLessThan(4 * BOUND_MS + 300)
      expect(tb.stats().flushFailures).toBeGreaterThan(0)
      expect(metrics()).toContain(`tollgate_flush_failures_total{class="TokenBudget",prefix="fl:${policy}:"} ${tb.stats().flushFailures}`)
      expect(tb.stats().errors[codes.STORE_UNAVAILABLE]).toBeGreaterThan(1) // the record that met the outage, and the flush's tries
      redis = await restart(redis)
      // Right after the restart: the first flush succeeds.
      expect(await tb.flush()).toBe(true)
      expect(tb.stats()).toMatchObject({ pending: 0, replayed: 1_500 })
      const admin = new Redis(redis.url)
      expect(await admin.hget(`fl:${policy}:k`, 'u')).toBe('1500')
      admin.disconnect()
    })
  }

  it('close({ flush: true }) pushes what every class queued, and says how many were left when it could not', async () => {
    let redis = await server()
    const store = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000 })
    const rl = new RateLimiter(store, { maxRequests: 100, prefix: 'close:rl:' })
    const tb = new TokenBudget(store, { maxTokens: 1_000, prefix: 'close:tb:' })
    await rl.consume('k')
    await redis.stop()
    for (let i = 0; i < 10; i++) await Promise.all([rl.consume('k'), tb.record('k', 3)])
    expect(store.health().pending).toBe(20)
    // Still down: it gives up after its bound and reports the 20 left.
    const down = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000 })
    const other = new RateLimiter(down, { prefix: 'close:other:' })
    await other.consume('x')
    expect(await down.close({ flush: true, timeoutMs: 200 })).toEqual({ left: 1 })
    redis = await restart(redis)
    expect(await store.close({ flush: true })).toEqual({ left: 0 })
    const admin = new Redis(redis.url)
    expect(await admin.llen('close:rl:k')).toBe(10)
    expect(await admin.hget('close:tb:k', 'u')).toBe('30')
    admin.disconnect()
  })
})

describe('store URLs', () => {
  const SECRET = 'Hunter2Secret'
  const bad = [
    `redis://admin:${SECRET}@db.internal:port`,
    `redis://admin:${SECRET}@db.internal:99999`,
    `redis://admin:${SECRET}@:6379`,
    `redis://admin:${SECRET}@db internal:6379`,
    `redis://admin:${SECRET}@db.internal:6379/zero`,
    `rediss://admin:${SECRET}@[::1:6379`,
    `redis://admin:${SECRET}@db.internal:6379/0%zz`,
    `http://admin:${SECRET}@db.internal:6379`,
    `redis://${SECRET}@db.internal:port`,
  ]
  it('a malformed URL is ERR_TOLLGATE_INVALID_ARG, and its password is never shown', () => {
    for (const url of bad) {
      for (const make of [() => new RedisStore(url), () => new RedisStore({ url }), () => new RedisStore({ cluster: [url] }), () => new RateLimiter(url)]) {
        let err: any
        try {
          make()
        } catch (e) {
          err = e
        }
        expect(err, url).toBeInstanceOf(TypeError)
        expect(err.code, url).toBe(codes.INVALID_ARG)
        expect(`${err.message} ${err.stack} ${JSON.stringify(err)} ${String(err.cause ?? '')}`, url).not.toContain(SECRET)
        expect(err.message).toContain('***')
      }
    }
  })
})

describe('prefixes that would break Redis Cluster slot routing', () => {
  const BAD = ['', 'a{', 'x{}', '{}', '}b']
  // Each class's keys share one hash tag built from its prefix; a prefix with which they would
  // not is refused at construction, on every store. The others work on a real Cluster.
  const classes: Record<string, { refused: string[]; use: (store: RedisStore, prefix: string) => Promise<unknown> }> = {
    CostTracker: {
      refused: ['', 'a{', 'x{}', '{}', '}b'],
      use: (store, prefix) => new CostTracker(store, { prefix, dailyBudget: 10, onAlert: () => {} }).recordCost(0.5, { tags: { team: 'a' } }),
    },
    SemanticCache: {
      refused: ['', '}b'],
      use: async (store, prefix) => {
        const c = new SemanticCache(store, { prefix: prefix, embed: ngramEmbedder().embed })
        await c.set('m', [{ role: 'user', content: 'hello there' }], 'hi')
        return c.get('m', [{ role: 'user', content: 'hello there' }])
      },
    },
    'the job limiter': {
      refused: ['x{}', '{}'],
      use: async (store, prefix) => {
        const l = createLLMRateLimiter({
          models: { m: { requestsPerMinute: 10, tokensPerMinute: 1_000 } },
          resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10, estimatedNumberOfRequests: 1, maxWaitMS: { m: 0 } } },
          backend: createRedisBackend({ client: store, keyPrefix: prefix }),
        })
        try {
          return await l.queueJob({ jobId: 'j', job: async () => ({ requestCount: 1, inputTokens: 10, cachedTokens: 0, outputTokens: 0, data: 'ok' }) })
        } finally {
          await l.stop()
        }
      },
    },
  }
  for (const [name, c] of Object.entries(classes)) {
    it(`${name}: refused at construction, or working on a 3-master Cluster`, async () => {
      const store = new RedisStore({ cluster: clusterUrls(), commandTimeoutMs: 5_000 })
      stores.push(store)
      for (const prefix of BAD) {
        const outcome = await Promise.resolve()
          .then(() => c.use(store, prefix))
          .then(
          () => 'works',
          (e) => e.code,
        )
        expect([prefix, outcome]).toEqual([prefix, c.refused.includes(prefix) ? codes.INVALID_ARG : 'works'])
      }
    })
  }
})

describe("'local' starts from the last state the process saw", () => {
  it('RateLimiter: a twin admits only what Redis last said was left, not a fresh window', async () => {
    const redis = await server()
    const store = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000 })
    const rl = new RateLimiter(store, { maxRequests: 10, windowSeconds: 60, prefix: 'seed:rl:' })
    for (let i = 0; i < 7; i++) await rl.consume('k')
    expect(await rl.consume('full')).toMatchObject({ remaining: 9 })
    await redis.stop()
    const k = []
    for (let i = 0; i < 5; i++) k.push(await rl.consume('k'))
    // 3 were left: the twin admits 3 (an empty twin would have admitted all 5).
    expect(k.map((r) => [r.allowed, r.remaining, r.fallback])).toEqual([
      [true, 2, 'local'],
      [true, 1, 'local'],
      [true, 0, 'local'],
      [false, 0, 'local'],
      [false, 0, 'local'],
    ])
    expect((await rl.consume('full')).remaining).toBe(8)
    // An id Redis never answered starts empty.
    expect((await rl.consume('new')).remaining).toBe(9)
  })

  it("Quota: the twin starts from each key's day count, TPM window and spacing as Redis last answered", async () => {
    const redis = await server()
    const store = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000 })
    let now = Date.UTC(2026, 0, 1, 12)
    let n = 0
    const quota: any = new Quota(store, { prefix: 'seed:quota:', now: () => now, id: () => `h${n++}`, bufferMs: 0 })
    const keys = [{ id: 'a', rpm: 60, tpm: 1_000, rpd: 4, priority: 2 }, { id: 'b', rpm: 60, tpm: 1_000, rpd: 100, priority: 1 }]
    for (let i = 0; i < 3; i++) {
      expect(await quota.reserve('s', keys, 300)).toMatchObject({ ok: true, key: keys[0] })
      now += 1_000
    }
    await redis.stop()
    // 'a' has 1 request of its day left and 900 tokens in the window: 300 more do not fit, and
    // 'b' (never used) takes them; an empty twin would have given 'a' its whole day again.
    const r = await quota.reserve('s', keys, 300)
    expect(r).toMatchObject({ ok: true, fallback: 'local', key: keys[1] })
    expect(r.checks[0]).toMatchObject({ key: 'a', dailyUsed: 3, tokenUsed: 900 })
    now += 1_000
    expect(await quota.reserve('s', keys, 50)).toMatchObject({ ok: true, key: keys[0] })
    now += 1_000
    // 'a' has used its 4 requests of the day now.
    expect((await quota.reserve('s', keys, 50)).checks[0]).toMatchObject({ dailyUsed: 4, dailyLeft: 0 })
  })

  it('TokenBudget: the twin starts from the used and held tokens Redis last reported', async () => {
    const redis = await server()
    const store = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000 })
    const b = new TokenBudget(store, { maxTokens: 1_000, prefix: 'seed:tb:' })
    await b.record('u', 600)
    await b.reserve('u', 300)
    await redis.stop()
    expect(await b.check('u')).toMatchObject({ fallback: 'local', used: 600, reserved: 300, remaining: 100 })
    expect(await b.reserve('u', 150)).toMatchObject({ fallback: 'local', allowed: false })
    expect(await b.reserve('u', 100)).toMatchObject({ fallback: 'local', allowed: true })
  })

  it('ProviderLimiter: the twin takes no more points than Redis last said were left', async () => {
    const redis = await server()
    const store = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000 })
    const pl = new ProviderLimiter(store, { providers: { openai: { points: 10, duration: 60, keyPrefix: 'seed:pl' } } })
    expect(await pl.tryConsume('openai', 'global', 8)).toMatchObject({ allowed: true, remaining: 2 })
    await redis.stop()
    expect(await pl.tryConsume('openai')).toMatchObject({ allowed: true, remaining: 1, fallback: 'local' })
    expect(await pl.tryConsume('openai')).toMatchObject({ allowed: true, remaining: 0, fallback: 'local' })
    expect(await pl.tryConsume('openai')).toMatchObject({ allowed: false, fallback: 'local' })
  })

  it('CostTracker: the twin starts from the spend and holds Redis last reported', async () => {
    const redis = await server()
    const store = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000 })
    const c = new CostTracker(store, { dailyBudget: 10, monthlyBudget: 100, prefix: 'seed:cost:', onAlert: () => {} })
    await c.recordCost(6)
    const held = await c.reserve(1)
    expect(held.hold).not.toBeNull()
    await redis.stop()
    // 6 spent + 1 held of 10: 3 left today, not 10.
    expect(await c.reserve(3.5)).toMatchObject({ fallback: 'local', hold: null })
    expect((await c.reserve(3)).hold).not.toBeNull()
  })

  it("CostTracker: what the month spent on earlier days carries over too (it never counts as today's)", async () => {
    const redis = await server()
    let t = Date.UTC(2026, 10, 10, 12)
    const store = open(redis.url, { onStoreError: 'local', storeRetryMs: 60_000, now: () => t })
    const c = new CostTracker(store, { dailyBudget: 5, monthlyBudget: 10, prefix: 'seed:month:', onAlert: () => {} })
    await c.recordCost(4)
    t += 86_400_000
    await c.recordCost(3)
    await redis.stop()
    // Month: 7 of 10 spent; today: 3 of 5.
    expect(await c.reserve(2.5)).toMatchObject({ fallback: 'local', hold: null }) // 3 + 2.5 > 5 today
    expect((await c.reserve(2)).hold).not.toBeNull() // today 5 of 5, month 9 of 10
    t += 86_400_000 // a new day (the hold has expired): the month still has only 3 left
    expect(await c.reserve(3.5)).toMatchObject({ hold: null })
    expect((await c.reserve(3)).hold).not.toBeNull()
  })
})
