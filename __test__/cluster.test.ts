// Redis Cluster: every class works on a local 3-master cluster. Each call touches one key, so
// it never crosses slots; concurrent limiter calls are split by slot into one script each.
import Redis from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CostTracker, Quota, RateLimiter, RedisStore, ResponseCache, SemanticCache, SessionStore, TokenBudget } from '../lib/index.js'
import { Clock, clusterUrls } from './helpers/stores.js'
import { ngramEmbedder } from './helpers/embedder.js'

describe('Redis Cluster (3 masters)', () => {
  let cluster: { urls: string[] }
  let store: RedisStore
  const clock = new Clock()
  beforeAll(async () => {
    cluster = { urls: clusterUrls() }
    // This suite is about Cluster behaviour, not timeouts: it runs beside the suites that spawn
    // processes, and on a 2-core CI box a cold node can take longer than the 250 ms default.
    store = new RedisStore({ cluster: cluster.urls, now: clock.now, commandTimeoutMs: 5000 })
  }, 60_000)
  afterAll(async () => {
    await store?.close()
  })

  it('rate limits across keys on every node, in batches split by slot', async () => {
    const rl = new RateLimiter(store, { maxRequests: 5, windowSeconds: 60, prefix: 'cl:rl:' })
    const ids = Array.from({ length: 40 }, (_, i) => `tenant-${i}`)
    const results = await Promise.all(ids.flatMap((id) => Array.from({ length: 8 }, () => rl.consume(id))))
    expect(results.filter((r) => r.allowed)).toHaveLength(40 * 5)
    for (const id of ids) expect(await rl.check(id)).toEqual({ allowed: false, remaining: 0, resetInSeconds: 60 })
  })

  it('budgets, cache and sessions work on the cluster', async () => {
    const budget = new TokenBudget(store, { maxTokens: 100, prefix: 'cl:tb:' })
    const { hold } = await budget.reserve('org', 70)
    expect((await budget.reserve('org', 40)).hold).toBeNull()
    expect(await budget.settle(hold!, 10)).toMatchObject({ used: 10, reserved: 0 })

    const cache = new ResponseCache(store, { prefix: 'cl:cache:' })
    for (let i = 0; i < 20; i++) await cache.set('gpt-4o', [{ i }], { answer: i })
    for (let i = 0; i < 20; i++) expect(await cache.get('gpt-4o', [{ i }])).toEqual({ answer: i })

    const sessions = new SessionStore(store, { prefix: 'cl:s:' })
    await Promise.all(Array.from({ length: 20 }, (_, i) => sessions.append(`user-${i % 4}`, { i })))
    for (let u = 0; u < 4; u++) expect((await sessions.load<{ messages: unknown[] }>(`user-${u}`))!.messages).toHaveLength(5)
  })

  it('cost trackers decide in one slot each, on every node', async () => {
    const trackers = Array.from({ length: 6 }, (_, i) => new CostTracker(store, { prefix: `cl:cost:${i}:`, dailyBudget: 1, onAlert: () => {} }))
    const holds = await Promise.all(trackers.flatMap((t) => Array.from({ length: 5 }, () => t.reserve(0.3, { tags: { org: 'x' } }))))
    expect(holds.filter((r) => r.allowed)).toHaveLength(6 * 3)
    for (const t of trackers) await t.recordCost(0.05, { tags: { org: 'x' } })
    for (const t of trackers) expect((await t.totals()).daily).toMatchObject({ spent: 0.05, reserved: 0.9, byTag: { org: { x: 0.05 } } })
  })

  it('Quota scopes live on every node', async () => {
    const quota: any = new Quota({ store, prefix: 'cl:quota:', now: () => 0 })
    const keys = [{ id: 'a', rpm: 60_000, tpm: 1_000, rpd: 2 }]
    for (let i = 0; i < 20; i++) {
      const r = await quota.reserve(`tenant-${i}`, keys, 10)
      expect(r.ok).toBe(true)
      expect(await quota.commit(r.hold, { tokens: 5 })).toBe(true)
    }
    expect((await quota.check('tenant-3', keys, 1)).checks[0]).toMatchObject({ dailyUsed: 1, tokenUsed: 5 })
  })

  it('the keys are spread over the masters', async () => {
    const counts = await Promise.all(
      cluster.urls.map(async (url) => {
        const node = new Redis(url)
        const n = (await node.keys('cl:*')).length
        node.disconnect()
        return n
      }),
    )
    expect(counts.every((n) => n > 0)).toBe(true)
  })

  it('accepts an ioredis Cluster client in place of a store', async () => {
    const client = new Redis.Cluster(cluster.urls.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })), { lazyConnect: true })
    const rl = new RateLimiter(client, { maxRequests: 2, prefix: 'cl:ioredis:' })
    expect((await rl.consume('x')).allowed).toBe(true)
    expect((await rl.consume('x')).allowed).toBe(true)
    expect((await rl.consume('x')).allowed).toBe(false)
    client.disconnect()
  })

  it('createLLMRateLimiter with createRedisBackend: every key of a decision on one slot', async () => {
    const { createLLMRateLimiter, createRedisBackend } = await import('../lib/index.js')
    const limiter = createLLMRateLimiter({
      models: { a: { tokensPerMinute: 30_000, maxConcurrentRequests: 2 }, b: { requestsPerDay: 5 } },
      escalationOrder: ['a', 'b'],
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10_000, estimatedNumberOfRequests: 1, maxWaitMS: { a: 0, b: 0 } } },
      backend: createRedisBackend({ client: store, keyPrefix: 'cl:jobs:' }),
    })
    await limiter.start()
    const job = async ({ modelId }: { modelId: string }) => ({ requestCount: 1, inputTokens: 10_000, cachedTokens: 0, outputTokens: 0, data: modelId })
    const used = await Promise.all(Array.from({ length: 6 }, (_, i) => limiter.queueJob({ jobId: `${i}`, job }).then((r) => r.modelUsed, (e) => e.code)))
    // a: 2 at once (concurrency), 3 a minute (TPM); b: 5 a day. All 6 fit between them.
    const onA = used.filter((m) => m === 'a').length
    expect(onA).toBeGreaterThanOrEqual(2)
    expect(onA).toBeLessThanOrEqual(3)
    expect(used.filter((m) => m === 'b').length).toBe(6 - onA)
    expect(limiter.getModelStats('b').requestsPerDay!.current).toBe(6 - onA)
    await limiter.stop()
  })

  it('SemanticCache: every key of one cache in one slot; another store sees the entries', async () => {
    const opts = { embed: ngramEmbedder().embed, prefix: 'cl:sem:', maxEntries: 3 }
    const a = new SemanticCache(store, opts)
    const other = new RedisStore({ cluster: cluster.urls, now: clock.now, commandTimeoutMs: 5000 })
    try {
      const b = new SemanticCache(other, opts)
      for (const q of ['What is Node.js?', 'What is Deno?', 'What is Bun?', 'What is Rust?']) await a.set('m', [{ role: 'user', content: q }], q)
      expect(await b.get('m', [{ role: 'user', content: 'what is rust' }])).toMatchObject({ hit: true, response: 'What is Rust?' })
      expect((await b.get('m', [{ role: 'user', content: 'what is node.js' }])).hit).toBe(false)
      expect((await b.stats()).entries).toBe(3)
    } finally {
      await other.close()
    }
  })
})
