// Fuzz: every public function and method called with hostile arguments (wrong types, NaN,
// ±Infinity, huge numbers, huge strings, deep and cyclic objects, ids full of `{}*:` and
// newlines, unicode). Each call must return, resolve, or fail with a coded TypeError /
// RangeError / StoreError — never crash the process or hang. A seeded generator keeps it
// reproducible: a failure prints the seed and the call.
import { describe, expect, it } from 'vitest'
import * as tollgate from '../lib/index.js'
import { CostTracker, MemoryStore, ModelTiers, ProviderLimiter, Quota, RateLimiter, RedisStore, ResponseCache, SemanticCache, SessionStore, TokenBudget, createLLMRateLimiter } from '../lib/index.js'
import { ngramEmbedder } from './helpers/embedder.js'
import { redisUrl } from './helpers/stores.js'
import { prng } from './helpers/prng.js'

const HOSTILE_IDS = ['a:b', '{tag}', '}{', '*', '?', '[a-z]', 'x\ny', '\r\n', '\0', ' ', 'é', '🚀', '\ud800', 'a'.repeat(1024), 'a'.repeat(1025), '..', '/']

function deep(n: number): unknown {
  let o: any = {}
  for (let i = 0; i < n; i++) o = { o }
  return o
}

function hostileObject(): any {
  const o: any = { a: 1 }
  o.self = o
  return o
}

function throwingGetter(): any {
  return new Proxy(
    {},
    {
      get() {
        throw new Error('hostile getter')
      },
      ownKeys() {
        throw new Error('hostile getter')
      },
    },
  )
}

function values(r: () => number): unknown[] {
  return [
    undefined,
    null,
    NaN,
    Infinity,
    -Infinity,
    -0,
    0,
    -1,
    1.5,
    2 ** 53 + 1,
    1e308,
    Number.MIN_VALUE,
    Math.floor(r() * 1e6),
    true,
    '',
    'x'.repeat(1_000_000),
    HOSTILE_IDS[Math.floor(r() * HOSTILE_IDS.length)],
    String(Math.floor(r() * 10)),
    [],
    [1, 'a', null],
    {},
    { maxRequests: -1, windowSeconds: NaN, maxTokens: Infinity, ttl: 0 },
    { role: 'user', content: 'x' },
    deep(2_000),
    hostileObject(),
    throwingGetter(),
    () => 1,
    Symbol('s'),
    10n,
    new Date(NaN),
    new Map(),
    Object.create(null),
  ]
}

interface Outcome {
  ok: boolean
  error?: any
}

async function outcome(f: () => unknown): Promise<Outcome> {
  try {
    const r = f()
    if (r && typeof (r as any).then === 'function') {
      const settled = await Promise.race([
        (r as Promise<unknown>).then(
          () => ({ ok: true }),
          (error) => ({ ok: false, error }),
        ),
        new Promise<Outcome>((resolve) => setTimeout(() => resolve({ ok: false, error: new Error('hung for 5 s') }), 5_000)),
      ])
      return settled
    }
    return { ok: true }
  } catch (error) {
    return { ok: false, error }
  }
}

function acceptable(e: any): boolean {
  if (e instanceof Error && e.message === 'hostile getter') return true // the caller's own exception
  const code: unknown = e?.code
  if (!(e instanceof Error) || typeof code !== 'string') return false
  if (!code.startsWith('ERR_TOLLGATE_') || code === 'ERR_TOLLGATE_INTERNAL') return false
  return e instanceof TypeError || e instanceof RangeError || e.name === 'StoreError'
}

/** Name, call, and a valid argument list that the fuzzer spoils one argument at a time. */
type Target = [string, (...args: any[]) => unknown, unknown[]]

function targets(store: MemoryStore | RedisStore): Target[] {
  const rl = new RateLimiter(store, { maxRequests: 3, prefix: 'fz:rl:' })
  const tb = new TokenBudget(store, { maxTokens: 100, prefix: 'fz:tb:' })
  const cache = new ResponseCache(store, { prefix: 'fz:c:' })
  const sessions = new SessionStore(store, { prefix: 'fz:s:', maxBytes: 100_000 })
  const cost = new CostTracker(store, { prefix: 'fz:cost:', onAlert: () => {} })
  const quota = new Quota({ store, prefix: 'fz:q:' })
  const tiers = new ModelTiers({ tracker: cost })
  const semantic = new SemanticCache(store, { embed: ngramEmbedder(32).embed, prefix: 'fz:sem:' })
  const providers = new ProviderLimiter(store, { providers: { openai: { points: 100, duration: 60, keyPrefix: 'fz:p' } } })
  const jobs = createLLMRateLimiter({
    models: { a: { requestsPerMinute: 100, tokensPerMinute: 100_000 } },
    resourceEstimationsPerJob: { s: { estimatedUsedTokens: 10, estimatedNumberOfRequests: 1, maxWaitMS: { a: 0 } } },
  })
  const job = () => ({ requestCount: 1, inputTokens: 1, cachedTokens: 0, outputTokens: 1, data: 1 })
  return [
    ['new SemanticCache', (a, b) => new SemanticCache(a, b), [store, { embed: () => [1, 0], threshold: 0.99 }]],
    ['semantic.get', (a, b, c) => semantic.get(a, b, c), ['gpt-4o', [{ role: 'user', content: 'hi there' }], {}]],
    ['semantic.set', (a, b, c) => semantic.set(a, b, c), ['gpt-4o', [{ role: 'user', content: 'hi there' }], 'hello']],
    ['semantic.delete', (a, b) => semantic.delete(a, b), ['gpt-4o', [{ role: 'user', content: 'hi there' }]]],
    ['semantic.reportFalseHit', (a) => semantic.reportFalseHit(a), ['abc']],
    ['new ProviderLimiter', (a, b) => new ProviderLimiter(a, b), [store, { providers: { x: { points: 1, duration: 1 } } }]],
    ['providers.tryConsume', (a, b, c) => providers.tryConsume(a, b, c), ['openai', 'global', 1]],
    ['createLLMRateLimiter', (a) => createLLMRateLimiter(a).stop(), [{ models: { a: { requestsPerMinute: 1 } } }]],
    ['jobs.queueJob', (a) => jobs.queueJob(a), [{ jobId: 'j', jobType: 's', job }]],
    ['jobs.hasCapacityForModel', (a) => jobs.hasCapacityForModel(a), ['a']],
    ['jobs.getModelStats', (a) => jobs.getModelStats(a), ['a']],
    ['new RateLimiter', (a, b) => new RateLimiter(a, b), [store, { maxRequests: 5, windowSeconds: 60, prefix: 'fz:' }]],
    ['new TokenBudget', (a, b) => new TokenBudget(a, b), [store, { maxTokens: 100, prefix: 'fz:' }]],
    ['new ResponseCache', (a, b) => new ResponseCache(a, b), [store, { ttl: 60, prefix: 'fz:' }]],
    ['new SessionStore', (a, b) => new SessionStore(a, b), [store, { ttl: 60, prefix: 'fz:' }]],
    ['new CostTracker', (a, b) => new CostTracker(a, b), [store, { dailyBudget: 1, prefix: 'fz:' }]],
    ['new Quota', (a) => new Quota(a), [{ store, prefix: 'fz:' }]],
    ['new ModelTiers', (a) => new ModelTiers(a), [{ shortInputTokens: 10 }]],
    ['new MemoryStore', (a) => new MemoryStore(a), [{}]],
    ['new RedisStore', (a, b) => new RedisStore(a, b).close(), ['redis://127.0.0.1:1', { connectTimeoutMs: 50 }]],
    ['rl.consume', (a) => rl.consume(a), ['id']],
    ['rl.check', (a) => rl.check(a), ['id']],
    ['rl.record', (a) => rl.record(a), ['id']],
    ['tb.reserve', (a, b) => tb.reserve(a, b), ['b', 5]],
    ['tb.record', (a, b) => tb.record(a, b), ['b', 5]],
    ['tb.settle', (a, b) => tb.settle(a, b), [{ bucket: 'b', id: '1-1', tokens: 5, expiresAt: 0 }, 3]],
    ['tb.release', (a) => tb.release(a), [{ bucket: 'b', id: '1-1', tokens: 5, expiresAt: 0 }]],
    ['cache.get', (a, b) => cache.get(a, b), ['gpt-4o', [{ role: 'user', content: 'hi' }]]],
    ['cache.set', (a, b, c) => cache.set(a, b, c), ['gpt-4o', [{ role: 'user', content: 'hi' }], { text: 'a' }]],
    ['cache.invalidate', (a, b) => cache.invalidate(a, b), ['gpt-4o', [{ role: 'user', content: 'hi' }]]],
    ['sessions.save', (a, b) => sessions.save(a, b), ['s', { messages: [] }]],
    ['sessions.load', (a) => sessions.load(a), ['s']],
    ['sessions.append', (a, b, c) => sessions.append(a, b, c), ['s', { role: 'user' }, { role: 'assistant' }]],
    ['sessions.touch', (a) => sessions.touch(a), ['s']],
    ['sessions.destroy', (a) => sessions.destroy(a), ['s']],
    ['cost.recordUsage', (a, b, c, d) => cost.recordUsage(a, b, c, d), ['gpt-4o', 100, 10, { feature: 'x' }]],
    ['cost.recordCost', (a, b) => cost.recordCost(a, b), [0.01, { tags: { feature: 'x' } }]],
    ['cost.reserve', (a, b) => cost.reserve(a, b), [0.01, { model: 'gpt-4o' }]],
    ['cost.settle', (a, b, c) => cost.settle(a, b, c), [{ id: '2026-11-25#1', estimateUsd: 0.01, expiresAt: 0, model: 'gpt-4o' }, { inputTokens: 10 }, {}]],
    ['cost.release', (a) => cost.release(a), [{ id: '2026-11-25#1', estimateUsd: 0.01, expiresAt: 0 }]],
    ['cost.totals', (a) => cost.totals(a), [{ tags: true }]],
    ['quota.check', (a, b, c) => quota.check(a, b, c), ['scope', [{ id: 'k', rpm: 60, tpm: 1000, rpd: 100 }], { messages: [] }]],
    ['quota.reserve', (a, b, c) => quota.reserve(a, b, c), ['scope', [{ id: 'k', rpm: 60, tpm: 1000, rpd: 100 }], { messages: [] }]],
    ['quota.commit', (a, b) => quota.commit(a, b), [{ id: 'h', scope: 'scope', key: 'k', tokens: 1 }, { tokens: 1 }]],
    ['quota.rollback', (a) => quota.rollback(a), [{ id: 'h', scope: 'scope', key: 'k', tokens: 1 }]],
    ['tiers.selectModel', (a, b) => tiers.selectModel(a, b), ['complex', { inputTokens: 100 }]],
    ['countTokens', (a, b, c) => tollgate.countTokens(a, b, c), ['hello', 'gpt-4o', {}]],
    ['countTokensBatch', (a, b) => tollgate.countTokensBatch(a, b), [['a', 'b'], 'cl100k_base']],
    ['countMessageTokens', (a, b) => tollgate.countMessageTokens(a, b), [[{ role: 'user', content: 'hi' }], 'gpt-4o']],
    ['encodingForModel', (a) => tollgate.encodingForModel(a), ['gpt-4o']],
    ['priceOf', (a) => tollgate.priceOf(a), ['gpt-4o']],
    ['costOf', (a, b, c) => tollgate.costOf(a, b, c), [{ inputTokens: 10, outputTokens: 5 }, 'gpt-4o', { batch: true }]],
    ['estimateCost', (a, b, c) => tollgate.estimateCost(a, b, c), ['hello', 10, 'gpt-4o']],
    ['usageFrom', (a) => tollgate.usageFrom(a), [{ usage: { prompt_tokens: 1, completion_tokens: 1 } }]],
    ['requestKey', (a, b) => tollgate.requestKey(a, b), ['gpt-4o', []]],
    ['withRetry', (a, b) => tollgate.withRetry(a, { maxRetries: 0, ...(typeof b === 'object' && b ? b : {}) }), [() => 1, {}]],
  ]
}

async function fuzz(store: MemoryStore | RedisStore, seed: number, rounds: number) {
  const r = prng(seed)
  const pool = values(r)
  const list = targets(store)
  const bad: string[] = []
  let calls = 0
  for (let i = 0; i < rounds; i++) {
    for (const [name, f, valid] of list) {
      // Spoil one or more arguments of a valid call (all of them one time in four).
      const args = valid.map((v) => (r() < 0.4 ? pool[Math.floor(r() * pool.length)] : v))
      if (r() < 0.25) for (let k = 0; k < args.length; k++) args[k] = pool[Math.floor(r() * pool.length)]
      const o = await outcome(() => f(...args))
      calls++
      if (!o.ok && !acceptable(o.error)) {
        const describe = (x: unknown) => (typeof x === 'string' ? `string(${x.length})` : typeof x === 'object' && x ? (Array.isArray(x) ? 'array' : 'object') : String(typeof x === 'symbol' ? 'symbol' : x))
        bad.push(`seed ${seed} round ${i}: ${name}(${args.map(describe).join(', ')}) → ${o.error && o.error.stack}`)
      }
    }
  }
  return { bad, calls }
}

describe('fuzz: hostile arguments to every public function', () => {
  it('MemoryStore: only coded errors, no crash, no hang', async () => {
    const { bad, calls } = await fuzz(new MemoryStore(), 20261125, 60)
    expect(bad.slice(0, 5)).toEqual([])
    expect(calls).toBeGreaterThan(2_500)
  }, 60_000)

  it('RedisStore: the same, with the checks done before anything is sent', async () => {
    const store = new RedisStore(redisUrl())
    const { bad } = await fuzz(store, 7, 20)
    expect(bad.slice(0, 5)).toEqual([])
    await store.close()
  }, 60_000)

  it('hostile ids stay inside their prefix and tenant', async () => {
    for (const store of [new MemoryStore(), new RedisStore(redisUrl())]) {
      const tag = Math.random().toString(36).slice(2)
      const a = new RateLimiter(store, { maxRequests: 1, prefix: `fz:${tag}:tenant-a:` })
      const b = new RateLimiter(store, { maxRequests: 1, prefix: `fz:${tag}:tenant-b:` })
      const ids = HOSTILE_IDS.filter((id) => id.length <= 1024)
      for (const id of ids) {
        expect((await a.consume(id)).allowed).toBe(true)
        expect((await a.consume(id)).allowed).toBe(false)
      }
      // Every id is still fresh for the other tenant, and each id was its own key.
      for (const id of ids) expect(await b.check(id)).toMatchObject({ allowed: true, remaining: 1 })
      expect(new Set(ids).size).toBe(ids.length)
      if (store instanceof RedisStore) await store.close()
    }
  })
})
