// Tenants that cannot collide (issue 21): one injective key encoding for every class and store
// (src/store/key.rs), canonical cache keys that keep distinct values distinct (lib/canonical.js),
// coded errors for numbers and callbacks that would starve a decision, and MemoryStore's bound.
import Redis, { Cluster } from 'ioredis'
import { describe, expect, it } from 'vitest'
import {
  MemoryStore,
  ProviderLimiter,
  RateLimiter,
  ResponseCache,
  SemanticCache,
  SessionStore,
  TokenBudget,
  CostTracker,
  codes,
  countTokensBatch,
  requestKey,
} from '../lib/index.js'
import { Clock, clusterUrls, forEachStore, redisUrl } from './helpers/stores.js'
import { ngramEmbedder } from './helpers/embedder.js'
import { prng } from './helpers/prng.js'

const INVALID = { code: codes.INVALID_ARG }
const RANGE = { code: codes.OUT_OF_RANGE }

// The characters that could make two tuples meet: separators, the escape character and its
// escapes, braces, NUL, both halves of a surrogate pair alone, U+FFFD, a whole emoji.
const TRICKY = [':', '%', '%3A', '%25', '%u', 'D800', '{', '}', '{x}', '\u0000', 'a', 'b', '\uD800', '\uDBFF', '\uDC00', '\uFFFD', '😀', 's:', '\u0000s:']

function randomPart(r: () => number): string {
  if (r() < 0.05) return 'L'.repeat(900 + Math.floor(r() * 100)) + TRICKY[Math.floor(r() * TRICKY.length)]
  let s = ''
  const n = 1 + Math.floor(r() * 5)
  for (let i = 0; i < n; i++) s += TRICKY[Math.floor(r() * TRICKY.length)]
  return s
}

/** `n` distinct tuples of `arity` random parts. */
function tuples(seed: number, n: number, arity: number): string[][] {
  const r = prng(seed)
  const seen = new Set<string>()
  const out: string[][] = []
  while (out.length < n) {
    const t = Array.from({ length: arity }, () => randomPart(r))
    const k = JSON.stringify(t)
    if (seen.has(k)) continue
    seen.add(k)
    out.push(t)
  }
  return out
}

forEachStore('distinct tuples never share a key', (c) => {
  it('RateLimiter, TokenBudget, SessionStore and ResponseCache ids', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const ids = tuples(21, 120, 1).map((t) => t[0])
    const rl = new RateLimiter(store, { maxRequests: 1, prefix: c.prefix('rl') })
    for (const id of ids) expect((await rl.consume(id)).allowed, JSON.stringify(id)).toBe(true)
    for (const id of ids) expect((await rl.check(id)).allowed).toBe(false)

    const budget = new TokenBudget(store, { maxTokens: 1_000_000, prefix: c.prefix('tb') })
    await Promise.all(ids.map((id, i) => budget.record(id, i + 1)))
    for (const [i, id] of ids.entries()) expect((await budget.check(id)).used).toBe(i + 1)

    const sessions = new SessionStore(store, { prefix: c.prefix('s') })
    await Promise.all(ids.map((id, i) => sessions.save(id, { i })))
    for (const [i, id] of ids.entries()) expect(await sessions.load(id)).toEqual({ i })

    const cache = new ResponseCache(store, { prefix: c.prefix('c'), keyFn: (model: string) => model })
    await Promise.all(ids.map((id, i) => cache.set(id, [], i)))
    for (const [i, id] of ids.entries()) expect(await cache.get(id, [])).toBe(i)
  })

  it('1 MB strings: refused as ids with a coded RangeError, distinct as cache content', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const mb = 'x'.repeat(1 << 20)
    const variants = [mb, mb.slice(1) + '\uD800', mb.slice(1) + '\uDBFF', mb.slice(1) + '\uFFFD', mb.slice(2) + '{}', mb.slice(3) + '%3A']
    const rl = new RateLimiter(store, { maxRequests: 1, prefix: c.prefix('rl') })
    for (const id of variants) await expect(rl.consume(id)).rejects.toMatchObject(RANGE)
    const cache = new ResponseCache(store, { prefix: c.prefix('c') })
    for (const [i, content] of variants.entries()) await cache.set('m', [{ role: 'user', content }], i)
    for (const [i, content] of variants.entries()) expect(await cache.get('m', [{ role: 'user', content }])).toBe(i)
  })

  it('ProviderLimiter providers and scopes', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const providers = ['a', 'a:b', 'a%3Ab', 'x{y}', '\uD800', '\uDBFF', '\uFFFD']
    const cfg = Object.fromEntries(providers.map((p) => [p, { points: 1, duration: 60 }]))
    // Default key prefixes are built from the provider's name; a random prefix would hide that,
    // so the Redis stores start from a database of their own keys.
    const pl = new ProviderLimiter(store, { providers: cfg })
    const scopes = tuples(22, 20, 1).map((t) => `${c.prefix('pl')}${t[0]}`)
    for (const p of providers) {
      for (const s of [...scopes, 'b:c', 'c', 'b:' + scopes[0]]) {
        expect((await pl.tryConsume(p, s)).allowed, `${JSON.stringify(p)} ${JSON.stringify(s)}`).toBe(true)
      }
    }
  })

  it('SemanticCache models and scopes', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const { embed } = ngramEmbedder()
    const cache = new SemanticCache(store, { embed, prefix: c.prefix('sem'), threshold: 0.5 })
    const pairs = tuples(23, 40, 2).map(([m, s]) => [m.slice(0, 1000), s.slice(0, 1000)])
    pairs.push(['a\u0000s:b', 'c'], ['a', 'b\u0000s:c'])
    const q = (i: number) => [{ role: 'user', content: `How do I reset the password of account ${i}?` }]
    for (const [i, [model, scope]] of pairs.entries()) await cache.set(model, q(i), { i }, { scope })
    for (const [i, [model, scope]] of pairs.entries()) {
      // A close question in the same (model, scope) finds its own answer, never another's.
      const r = await cache.get(model, [{ role: 'user', content: `How do I reset the password of the account ${i}?` }], { scope })
      if (r.hit) expect(r.response, JSON.stringify([model, scope])).toEqual({ i })
    }
    // The pair: a cross-scope hit returned the other tenant's response.
    expect((await cache.get('a', q(pairs.length - 2), { scope: 'b\u0000s:c' })).hit).toBe(false)
  })

  const kind = c.kind
  if (kind !== 'memory') {
    it('one key per id in Redis, none with a live hash tag', async () => {
      const clock = new Clock()
      const store = c.store(clock)
      const prefix = c.prefix('keys')
      const ids = tuples(24, 60, 1).map((t) => t[0])
      const rl = new RateLimiter(store, { maxRequests: 1, prefix })
      for (const id of ids) await rl.consume(id)
      const keys = await scan(kind, prefix)
      expect(keys).toHaveLength(ids.length)
      for (const k of keys) expect(k.slice(prefix.length)).not.toMatch(/[{}]/)
      // The very keys the shared encoding gives (what keyFor shows), on every store alike.
      const named = new ResponseCache(new MemoryStore(), { prefix, keyFn: (model: string) => model })
      expect(new Set(keys)).toEqual(new Set(ids.map((id) => named.keyFor(id, []))))
    })
  }
})

/** Keys under `prefix` on one Redis or on every Cluster master. */
async function scan(kind: 'redis' | 'cluster', prefix: string): Promise<string[]> {
  const nodes = kind === 'redis' ? [new Redis(redisUrl())] : clusterUrls().map((u) => new Redis(u))
  try {
    const out: string[] = []
    for (const n of nodes) {
      let cursor = '0'
      do {
        const [next, keys] = await n.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000)
        cursor = next
        out.push(...keys)
      } while (cursor !== '0')
    }
    return [...new Set(out)]
  } finally {
    for (const n of nodes) n.disconnect()
  }
}

forEachStore('issue 21, numbered cases', (c) => {
  it('1. x\\uD800, x\\uDBFF and x\\uFFFD are three tenants', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const ids = ['x\uD800', 'x\uDBFF', 'x\uFFFD']
    const rl = new RateLimiter(store, { maxRequests: 1, prefix: c.prefix('rl') })
    for (const id of ids) expect((await rl.consume(id)).allowed).toBe(true)
    const budget = new TokenBudget(store, { maxTokens: 100, prefix: c.prefix('tb') })
    await budget.record('x\uD800', 40)
    expect((await budget.check('x\uDBFF')).used).toBe(0)
    expect((await budget.check('x\uFFFD')).used).toBe(0)
    const sessions = new SessionStore(store, { prefix: c.prefix('s') })
    await sessions.save('sess\uD800', { messages: ['mine'] })
    expect(await sessions.load('sess\uDFFF')).toBeNull()
    expect(await sessions.load('sess\uD800')).toEqual({ messages: ['mine'] })
  })

  it('2. separators: provider a:b + scope c is not provider a + scope b:c; model a\\0s:b + scope c is not model a + scope b\\0s:c', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const p = c.prefix('pl')
    const pl = new ProviderLimiter(store, { providers: { [`${p}a:b`]: { points: 1 }, [`${p}a`]: { points: 1 } } })
    expect((await pl.tryConsume(`${p}a:b`, 'c')).allowed).toBe(true)
    expect((await pl.tryConsume(`${p}a`, 'b:c')).allowed).toBe(true)
    expect((await pl.tryConsume(`${p}a`, 'b:c')).allowed).toBe(false)

    const { embed } = ngramEmbedder()
    const cache = new SemanticCache(store, { embed, prefix: c.prefix('sem'), threshold: 0.5 })
    await cache.set('a\u0000s:b', [{ role: 'user', content: 'What is our refund policy?' }], 'tenant 1', { scope: 'c' })
    const other = await cache.get('a', [{ role: 'user', content: 'What is the refund policy?' }], { scope: 'b\u0000s:c' })
    expect(other.hit).toBe(false)
    const own = await cache.get('a\u0000s:b', [{ role: 'user', content: 'What is the refund policy?' }], { scope: 'c' })
    expect(own).toMatchObject({ hit: true, response: 'tenant 1' })
  })

  it('3. a lone surrogate in chat content is a request like any other', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const half = [{ role: 'user', content: 'cut emoji \ud800' }]
    const otherHalf = [{ role: 'user', content: 'cut emoji \udbff' }]
    expect(requestKey('m', half)).not.toBe(requestKey('m', otherHalf))
    const cache = new ResponseCache(store, { prefix: c.prefix('c') })
    await cache.set('m', half, 'first')
    expect(await cache.get('m', half)).toBe('first')
    expect(await cache.get('m', otherHalf)).toBeNull()
    const { embed } = ngramEmbedder()
    const sem = new SemanticCache(store, { embed, prefix: c.prefix('sem') })
    expect((await sem.get('m', half)).hit).toBe(false)
    await sem.set('m', half, 'x')
    expect(await sem.get('m', half)).toMatchObject({ hit: true, response: 'x' })
  })
})

describe('issue 21, case 4: values that hash alike or count as nothing', () => {
  it('[NaN], [undefined], [() => 1], [1n], holes and Maps are refused; [null] is a key of its own', () => {
    const k = requestKey('m', [null])
    expect(k).toMatch(/^[0-9a-f]{64}$/)
    for (const bad of [[NaN], [Infinity], [undefined], [() => 1], [1n], [Symbol('s')], [new Map([[1, 2]])], [new Set([1])], new Array(1)]) {
      expect(() => requestKey('m', bad as any), typeof bad[0]).toThrow(expect.objectContaining(INVALID))
    }
    const cyclic: any = { role: 'user' }
    cyclic.self = cyclic
    expect(() => requestKey('m', [cyclic])).toThrow(expect.objectContaining(INVALID))
    // What JSON leaves out of the request sent is left out of the key: an undefined property.
    expect(requestKey('m', [{ role: 'user', name: undefined }])).toBe(requestKey('m', [{ role: 'user' }]))
    // The error names where the value sits.
    expect(() => requestKey('m', [{ content: [{ n: NaN }] }])).toThrow(/messages\[0\]\.content\[0\]\.n is NaN/)
  })

  it('requestKey takes messages nested thousands of levels deep', () => {
    let deep: any = 'leaf'
    for (let i = 0; i < 10_000; i++) deep = { c: [deep] }
    const k = requestKey('m', [deep])
    expect(k).toMatch(/^[0-9a-f]{64}$/)
    let other: any = 'leaf2'
    for (let i = 0; i < 10_000; i++) other = { c: [other] }
    expect(requestKey('m', [other])).not.toBe(k)
  })

  it('recordUsage with 1e308 tokens is a coded RangeError, not $0', async () => {
    const tracker = new CostTracker(new MemoryStore(), { dailyBudget: 10, onAlert: () => {} })
    await expect(tracker.recordUsage('gpt-4o', 1e308, 0)).rejects.toMatchObject(RANGE)
    await expect(tracker.recordUsage('gpt-4o', { inputTokens: 1e308, outputTokens: 0 })).rejects.toMatchObject(RANGE)
    // A count inside the safe range whose cost the ledger cannot hold is refused too.
    await expect(tracker.recordUsage('gpt-4o', Number.MAX_SAFE_INTEGER, 0)).rejects.toMatchObject(RANGE)
    expect((await tracker.totals()).daily.spent).toBe(0)
    expect(await tracker.isOverBudget()).toMatchObject({ daily: false, monthly: false })
  })

  it('countTokensBatch on a sparse array is a coded TypeError', () => {
    const sparse = ['a', , 'b'] as string[]
    expect(() => countTokensBatch(sparse)).toThrow(expect.objectContaining(INVALID))
  })

  it('a SemanticCache embed that never settles times out with a coded error', async () => {
    const cache = new SemanticCache(new MemoryStore(), { embed: () => new Promise<number[]>(() => {}), embedTimeoutMs: 30 })
    await expect(cache.get('m', [{ role: 'user', content: 'hi' }])).rejects.toMatchObject({ code: codes.CALLBACK_TIMEOUT })
    await expect(cache.set('m', [{ role: 'user', content: 'hi' }], 1)).rejects.toMatchObject({ code: codes.CALLBACK_TIMEOUT })
    expect(new SemanticCache(new MemoryStore(), { embed: () => [1] }).stats()).toBeTruthy()
    expect(() => new SemanticCache(new MemoryStore(), { embed: () => [1], embedTimeoutMs: 0 })).toThrow(expect.objectContaining(RANGE))
  })

  it('prefixes and CostTracker tags holding a lone surrogate are refused, not merged', async () => {
    expect(() => new RateLimiter(new MemoryStore(), { prefix: 'p\uD800' })).toThrow(expect.objectContaining(INVALID))
    const tracker = new CostTracker(new MemoryStore(), { onAlert: () => {} })
    await expect(tracker.recordCost(1, { tags: { user: 'u\uD800' } })).rejects.toMatchObject(INVALID)
  })
})

describe('issue 21, case 5: MemoryStore({ maxKeys })', () => {
  it('evicts the least recently used key and counts it', async () => {
    const clock = new Clock()
    const store = new MemoryStore({ now: clock.now, maxKeys: 3 })
    expect(store.maxKeys).toBe(3)
    const rl = new RateLimiter(store, { maxRequests: 1 })
    for (const id of ['a', 'b', 'c']) await rl.consume(id)
    await rl.check('a') // a is now the most recently used
    await rl.consume('d') // evicts b
    expect(store.stats()).toEqual({ keys: 3, maxKeys: 3, evictions: 1 })
    expect((await rl.check('a')).allowed).toBe(false)
    expect((await rl.check('b')).allowed).toBe(true)
    expect((await rl.check('c')).allowed).toBe(false)
    expect(new MemoryStore().stats()).toEqual({ keys: 0, maxKeys: null, evictions: 0 })
    for (const bad of [0, -1, 1.5, Infinity]) expect(() => new MemoryStore({ maxKeys: bad })).toThrow(expect.objectContaining(RANGE))
    expect(() => new MemoryStore({ maxKeys: '5' as any })).toThrow(expect.objectContaining(INVALID))
  })

  it('1M ids through a store with maxKeys 10,000 hold 10,000 keys', async () => {
    const clock = new Clock()
    const store = new MemoryStore({ now: clock.now, maxKeys: 10_000 })
    const rl = new RateLimiter(store, { maxRequests: 5, windowSeconds: 3600 })
    global.gc?.()
    const before = process.memoryUsage().rss
    for (let i = 0; i < 1_000_000; i++) await rl.consume(`tenant-${i}`)
    const grown = process.memoryUsage().rss - before
    expect(store.stats()).toEqual({ keys: 10_000, maxKeys: 10_000, evictions: 990_000 })
    // Unbounded, 1M live ids hold over 400 MB (see the bench); bounded, a few MB of keys.
    expect(grown).toBeLessThan(150 * 1024 * 1024)
  }, 120_000)
})

describe('issue 21, case 6: ids never steer Cluster hash slots', () => {
  it('2,000 ids carrying one {tag} spread over every master', async () => {
    const { RedisStore } = await import('../lib/index.js')
    const store = new RedisStore({ cluster: clusterUrls(), commandTimeoutMs: 5000 })
    const admin = new Cluster(clusterUrls().map((u) => {
      const { hostname, port } = new URL(u)
      return { host: hostname, port: Number(port) }
    }))
    try {
      const prefix = `t:slot:${Date.now()}:`
      const rl = new RateLimiter(store, { maxRequests: 1, prefix })
      const ids = Array.from({ length: 2000 }, (_, i) => `{tag}-${i}`)
      await Promise.all(ids.map((id) => rl.consume(id)))
      const masters = admin.nodes('master')
      const counts = await Promise.all(masters.map(async (m) => {
        let n = 0
        let cursor = '0'
        do {
          const [next, keys] = await m.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
          cursor = next
          n += keys.length
        } while (cursor !== '0')
        return n
      }))
      expect(counts.reduce((a, b) => a + b, 0)).toBe(2000)
      for (const n of counts) expect(n).toBeGreaterThan(300)
    } finally {
      admin.disconnect()
      await store.close()
    }
  }, 60_000)
})
