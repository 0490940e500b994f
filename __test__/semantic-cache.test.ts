import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { promisify } from 'node:util'
import Redis from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { MemoryStore, RedisStore, SemanticCache, codes, requestKey } from '../lib/index.js'
import { cosine, ngramEmbedder } from './helpers/embedder.js'
import { Clock, forEachStore, redisUrl } from './helpers/stores.js'

const execFileP = promisify(execFile)
const semWorker = path.join(__dirname, 'helpers', 'semantic-worker.cjs')

const user = (content: string, system = 'You are a helpful assistant.') => [
  { role: 'system', content: system },
  { role: 'user', content },
]
const answer = { role: 'assistant', content: 'Node.js is a JavaScript runtime.' }

const ENABLE = 'How do I enable two-factor authentication on my account?'

forEachStore('SemanticCache', (c) => {
  function make(clock = new Clock(), options: Record<string, unknown> = {}) {
    const e = ngramEmbedder()
    const cache = new SemanticCache(c.store(clock), { embed: e.embed, prefix: c.prefix('sem'), ...options })
    return { cache, calls: e.calls, embed: e.embed, clock }
  }

  it('answers the identical request exactly, without calling embed', async () => {
    const { cache, calls } = make()
    expect(await cache.get('gpt-4o', user('What is Node.js?'))).toEqual({ hit: false })
    await cache.set('gpt-4o', user('What is Node.js?'), answer)
    expect(calls).toEqual(['What is Node.js?']) // set reused the embedding of the missed get
    const hit = await cache.get('gpt-4o', user('What is Node.js?'))
    expect(hit).toMatchObject({ hit: true, response: answer, similarity: 1, matchedQuery: 'What is Node.js?' })
    expect(calls.length).toBe(1)
  })

  it('answers a paraphrase within the threshold, and reports its similarity', async () => {
    const { cache, embed } = make()
    const stored = 'Can you explain how Node.js handles the event loop?'
    const asked = 'Can you explain how NodeJS handles the event loop?'
    const sim = cosine(embed(stored), embed(asked))
    expect(sim).toBeGreaterThanOrEqual(0.95)
    expect(sim).toBeLessThan(0.999)
    await cache.set('gpt-4o', user(stored), answer)
    const hit = await cache.get('gpt-4o', user(asked))
    expect(hit).toMatchObject({ hit: true, response: answer, matchedQuery: stored })
    if (!hit.hit) throw new Error('unreachable')
    expect(hit.similarity).toBeCloseTo(sim, 5)
    // Below the threshold: a miss.
    const far = 'Can you please explain how Node.js handles the event loop?'
    expect(cosine(embed(stored), embed(far))).toBeLessThan(0.95)
    expect((await cache.get('gpt-4o', user(far))).hit).toBe(false)
  })

  it('refuses negated and opposite questions even above the threshold', async () => {
    const { cache, embed } = make(new Clock(), { threshold: 0.9 })
    await cache.set('gpt-4o', user(ENABLE), answer)
    for (const asked of [
      'How do I disable two-factor authentication on my account?',
      'How do I not enable two-factor authentication on my account?',
    ]) {
      expect(cosine(embed(ENABLE), embed(asked))).toBeGreaterThanOrEqual(0.9)
      expect((await cache.get('gpt-4o', user(asked))).hit).toBe(false)
    }
    expect((await cache.get('gpt-4o', user('How do I enable two factor authentication on my account'))).hit).toBe(true)
  })

  it('refuses questions whose numbers differ', async () => {
    const { cache, embed } = make()
    const pairs = [
      ['List the top 5 hotels in Rome for families', 'List the top 10 hotels in Rome for families'],
      ['What were the sales on 2024-05-01 in the Paris store?', 'What were the sales on 2024-05-02 in the Paris store?'],
    ]
    for (const [stored, asked] of pairs) {
      expect(cosine(embed(stored), embed(asked))).toBeGreaterThanOrEqual(0.95)
      await cache.set('gpt-4o', user(stored), answer)
      expect((await cache.get('gpt-4o', user(asked))).hit).toBe(false)
    }
  })

  it('never answers across models, tenants or contexts', async () => {
    const { cache } = make()
    const q = 'What is Node.js?'
    const para = 'what is node.js'
    await cache.set('gpt-4o', user(q), answer)
    await cache.set('gpt-4o', user(q), 'tenant A', { scope: 'tenant-a' })
    expect((await cache.get('gpt-4o', user(para))).hit).toBe(true)
    expect((await cache.get('gpt-4o-mini', user(para))).hit).toBe(false)
    expect((await cache.get('gpt-4o', user(para, 'You are a pirate.'))).hit).toBe(false)
    expect((await cache.get('gpt-4o', [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }, { role: 'user', content: para }])).hit).toBe(false)
    expect(await cache.get('gpt-4o', user(para), { scope: 'tenant-a' })).toMatchObject({ hit: true, response: 'tenant A' })
    expect((await cache.get('gpt-4o', user(para), { scope: 'tenant-b' })).hit).toBe(false)
    // The exact tier is scoped too: tenant B's identical request does not see tenant A's entry.
    expect((await cache.get('gpt-4o', user(q), { scope: 'tenant-b' })).hit).toBe(false)
    const perTenant = new SemanticCache(c.store(new Clock()), {
      embed: ngramEmbedder().embed,
      prefix: c.prefix('sem'),
      scope: (_model: string, messages: any[]) => messages[0].content,
    })
    await perTenant.set('gpt-4o', user(q, 'acme'), 1)
    expect((await perTenant.get('gpt-4o', user(para, 'acme'))).hit).toBe(true)
    expect((await perTenant.get('gpt-4o', user(para, 'globex'))).hit).toBe(false)
  })

  it('expires entries after ttl (injected clock)', async () => {
    const clock = new Clock()
    const { cache } = make(clock, { ttl: 60 })
    await cache.set('gpt-4o', user('What is Node.js?'), answer)
    clock.advance(59_000)
    expect((await cache.get('gpt-4o', user('what is node.js'))).hit).toBe(true)
    clock.advance(1_000)
    expect((await cache.get('gpt-4o', user('what is node.js'))).hit).toBe(false)
    expect((await cache.get('gpt-4o', user('What is Node.js?'))).hit).toBe(false)
    expect((await cache.stats()).entries).toBe(0)
  })

  it('keeps at most maxEntries, evicting the oldest', async () => {
    const clock = new Clock()
    const { cache } = make(clock, { maxEntries: 3 })
    const qs = ['What is Node.js?', 'What is Deno?', 'What is Bun?', 'What is Rust?']
    for (const q of qs) {
      await cache.set('gpt-4o', user(q), q)
      clock.advance(1)
    }
    expect((await cache.stats()).entries).toBe(3)
    expect((await cache.get('gpt-4o', user(qs[0]))).hit).toBe(false)
    expect((await cache.get('gpt-4o', user('what is node.js'))).hit).toBe(false)
    for (const q of qs.slice(1)) expect(await cache.get('gpt-4o', user(q.toLowerCase()))).toMatchObject({ hit: true, response: q })
  })

  it('reportFalseHit evicts the entry that answered and counts it; delete and clear', async () => {
    const { cache } = make()
    await cache.set('gpt-4o', user('What is Node.js?'), answer)
    const hit = await cache.get('gpt-4o', user('what is node.js'))
    if (!hit.hit) throw new Error('expected a hit')
    expect(await cache.reportFalseHit(hit)).toBe(true)
    expect((await cache.get('gpt-4o', user('what is node.js'))).hit).toBe(false)
    expect(await cache.stats()).toMatchObject({ entries: 0, hits: 1, semanticHits: 1, exactHits: 0, misses: 1, falseHits: 1, hitRate: 0.5 })
    await cache.set('gpt-4o', user('What is Deno?'), 1)
    await cache.set('gpt-4o', user('What is Bun?'), 2)
    expect(await cache.delete('gpt-4o', user('What is Deno?'))).toBe(true)
    expect(await cache.delete('gpt-4o', user('What is Deno?'))).toBe(false)
    expect((await cache.get('gpt-4o', user('what is deno'))).hit).toBe(false)
    expect(await cache.clear()).toBe(1)
    expect((await cache.get('gpt-4o', user('what is bun'))).hit).toBe(false)
    expect((await cache.stats()).avgLookupMs).toBeGreaterThan(0)
  })

  it('a request without a user message is cached exactly only', async () => {
    const { cache, calls } = make()
    const msgs = [{ role: 'system', content: 'Summarise the day.' }]
    await cache.set('gpt-4o', msgs, 'ok')
    expect(await cache.get('gpt-4o', msgs)).toMatchObject({ hit: true, response: 'ok' })
    expect(calls).toEqual([])
  })

  it('rejects embeddings of other dimensions or without direction', async () => {
    let dims = 8
    const cache = new SemanticCache(c.store(new Clock()), {
      prefix: c.prefix('sem'),
      embed: async (t: string) => Array.from({ length: dims }, (_, i) => (t.length + i) % 3),
    })
    await cache.set('m', user('first question'), 1)
    dims = 9
    await expect(cache.get('m', user('second question'))).rejects.toMatchObject({ code: codes.OUT_OF_RANGE, name: 'RangeError' })
    const zero = new SemanticCache(c.store(new Clock()), { prefix: c.prefix('sem'), embed: () => [0, 0, 0] })
    await expect(zero.set('m', user('x'), 1)).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    const bad = new SemanticCache(c.store(new Clock()), { prefix: c.prefix('sem'), embed: () => 'nope' as any })
    await expect(bad.get('m', user('x'))).rejects.toMatchObject({ code: codes.INVALID_ARG, name: 'TypeError' })
    const boom = new SemanticCache(c.store(new Clock()), { prefix: c.prefix('sem'), embed: () => Promise.reject(new Error('quota')) })
    await expect(boom.get('m', user('x'))).rejects.toThrow('quota')
  })
})

describe('SemanticCache arguments', () => {
  const embed = () => [1, 2, 3]
  it('validates its options and arguments with coded errors', async () => {
    expect(() => new SemanticCache({} as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new SemanticCache({ embed, threshold: 1.5 })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => new SemanticCache({ embed, threshold: '0.9' as any })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new SemanticCache({ embed, maxEntries: 0 })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => new SemanticCache({ embed, ttl: -1 })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => new SemanticCache({ embed, scope: '' })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    const cache = new SemanticCache(new MemoryStore(), { embed })
    expect(cache.threshold).toBe(0.95)
    await expect(cache.get('', [])).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(cache.get('m', 'hi' as any)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(cache.set('m', [], undefined)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(cache.reportFalseHit({ hit: false } as any)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(cache.get('m', [], { scope: () => 5 } as any)).rejects.toMatchObject({ code: codes.INVALID_ARG })
  })
})

describe('SemanticCache on Redis: entries shared by every process', () => {
  const url = () => redisUrl()
  const prefix = () => `t:semshare:${randomUUID().slice(0, 8)}:`
  const opened: RedisStore[] = []
  const store = () => {
    const s = new RedisStore(url())
    opened.push(s)
    return s
  }
  afterAll(() => Promise.all(opened.map((s) => s.close())))

  it("a worker's new entries and deletions reach another worker's index on its next lookup", async () => {
    const p = prefix()
    const a = new SemanticCache(store(), { embed: ngramEmbedder().embed, prefix: p })
    const b = new SemanticCache(store(), { embed: ngramEmbedder().embed, prefix: p })
    expect((await b.get('gpt-4o', user('what is node.js'))).hit).toBe(false) // b's index is loaded (empty)
    await a.set('gpt-4o', user('What is Node.js?'), answer)
    expect(await b.get('gpt-4o', user('what is node.js'))).toMatchObject({ hit: true, response: answer })
    await a.delete('gpt-4o', user('What is Node.js?'))
    expect((await b.get('gpt-4o', user('what is node.js'))).hit).toBe(false)
    await a.set('gpt-4o', user('What is Deno?'), 1)
    expect((await b.get('gpt-4o', user('what is deno'))).hit).toBe(true)
    expect(await a.clear()).toBe(1)
    expect((await b.get('gpt-4o', user('what is deno'))).hit).toBe(false)
    await a.set('gpt-4o', user('What is Bun?'), 2)
    expect(await b.get('gpt-4o', user('what is bun'))).toMatchObject({ hit: true, response: 2 })
  })

  it('a restarted worker loads its index from Redis (paged, no KEYS); a running one follows a long log', async () => {
    const p = prefix()
    let i = 0
    // A vector per entry: entry n points along its own pair of axes.
    const embed = (t: string) => {
      const n = Number(t.split(' ')[1])
      const v = new Float32Array(64)
      v[n % 64] = 1
      v[Math.floor(n / 64) % 64] += 0.5
      return v
    }
    const writer = new SemanticCache(store(), { embed, prefix: p, maxEntries: 5000 })
    // A worker that loaded its (empty) index before the writes follows 1,200 log items.
    const follower = new SemanticCache(store(), { embed, prefix: p })
    expect((await follower.get('m', user('question 7 '))).hit).toBe(false)
    for (i = 0; i < 1200; i++) await writer.set('m', user(`question ${i}`), i)
    const restarted = new SemanticCache(store(), { embed, prefix: p })
    for (const n of [0, 499, 500, 1100, 1199]) {
      // The same vector under another question text: only the index can find it.
      const asked = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: `question ${n} ` }]
      expect(await restarted.get('m', asked)).toMatchObject({ hit: true, response: n, similarity: 1 })
      expect(await follower.get('m', asked)).toMatchObject({ hit: true, response: n, similarity: 1 })
    }
    expect((await restarted.stats()).entries).toBe(1200)
  })

  it('two processes: an entry set by one is found by the other, both ways', async () => {
    const p = prefix()
    const run = async (...args: string[]) => JSON.parse((await execFileP(process.execPath, [semWorker, ...args], { timeout: 15_000 })).stdout)
    expect(await run('set', url(), p, 'How do I enable two-factor authentication on my account?', 'from process 1')).toEqual({ ok: true })
    const here = new SemanticCache(url(), { embed: ngramEmbedder().embed, prefix: p })
    expect(await here.get('gpt-4o', [{ role: 'user', content: 'how do I enable two factor authentication on my account' }])).toMatchObject({ hit: true, response: 'from process 1' })
    await here.set('gpt-4o', [{ role: 'user', content: 'What is Node.js?' }], 'from the test')
    expect(await run('get', url(), p, 'what is node.js')).toMatchObject({ hit: true, response: 'from the test', matchedQuery: 'What is Node.js?' })
    expect(await run('get', url(), p, 'How do I disable two-factor authentication on my account?')).toEqual({ hit: false })
  })

  it('entries carry a Redis TTL, and maxEntries holds across processes', async () => {
    const p = prefix()
    const cache = new SemanticCache(url(), { embed: ngramEmbedder().embed, prefix: p, ttl: 120, maxEntries: 2 })
    await cache.set('m', user('What is Node.js?'), 1)
    const redis = new Redis(url())
    try {
      const keys = await redis.keys(`{${p}}*`)
      expect(keys.sort()).toEqual([`{${p}}e:${requestKey('m', user('What is Node.js?'))}`, `{${p}}ids`, `{${p}}log`].sort())
      for (const k of keys) {
        const ttl = await redis.pttl(k)
        expect(ttl).toBeGreaterThan(100_000)
        expect(ttl).toBeLessThanOrEqual(180_000)
      }
      for (const q of ['What is Deno?', 'What is Bun?', 'What is Rust?']) {
        await execFileP(process.execPath, [semWorker, 'set', url(), p, q, q], { timeout: 15_000, env: { ...process.env, SEM_MAX_ENTRIES: '2' } })
      }
      expect(await redis.zcard(`{${p}}ids`)).toBe(2)
      expect((await cache.get('m', user('what is node.js'))).hit).toBe(false)
    } finally {
      await redis.quit()
    }
  })
})

describe('SemanticCache index: approximate search against exact search', () => {
  it('recall ≥ 0.99 at 100,000 entries (64 dimensions)', () => {
    // The engine directly (the public class would embed 100k texts): one cache with the
    // approximate search from 2 entries on, one that always scans exactly.
    const native = require('../lib/native.js')
    const store = native.NativeStore.memory()
    const approx = native.semanticNew(store, 'approx', 1e9, 1e7, -1, 2)
    const exact = native.semanticNew(store, 'exact', 1e9, 1e7, -1, 1e8)
    const dims = 64
    const n = 100_000
    let x = 2463534242
    const rnd = () => {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      return (x >>> 0) / 4294967296 - 0.5
    }
    const data: Float32Array[] = []
    for (let i = 0; i < n; i++) {
      const v = new Float32Array(dims)
      for (let j = 0; j < dims; j++) v[j] = rnd()
      data.push(v)
      native.semanticSet(approx, `k${i}`, 's', '', '0', v, 0)
      native.semanticSet(exact, `k${i}`, 's', '', '0', v, 0)
    }
    // Questions near a stored one (what a cache hit looks like): similarity ~0.80–0.99.
    let same = 0
    let asked = 0
    for (let i = 0; i < 1000; i++) {
      const base = data[(i * 7919) % n]
      const noise = 0.05 + (i % 10) * 0.03
      const q = base.map((b) => b + noise * rnd())
      const e = native.semanticSearch(exact, 's', q, '', 0)
      if (e.similarity < 0.8) continue
      asked++
      if (native.semanticSearch(approx, 's', q, '', 0)?.key === e.key) same++
    }
    expect(asked).toBeGreaterThan(900)
    expect(same / asked).toBeGreaterThanOrEqual(0.99)
  })
})

describe('SemanticCache on Redis: corrupt entries', () => {
  it('a response that is not JSON is a miss and is evicted', async () => {
    const p = `t:semcorrupt:${randomUUID().slice(0, 8)}:`
    const cache = new SemanticCache(redisUrl(), { embed: ngramEmbedder().embed, prefix: p })
    const msgs = user('What is Node.js?')
    await cache.set('m', msgs, answer)
    const redis = new Redis(redisUrl())
    try {
      const key = `{${p}}e:${requestKey('m', msgs)}`
      await redis.hset(key, 'v', 'not json')
      expect(await cache.get('m', msgs)).toEqual({ hit: false })
      await expect.poll(() => redis.exists(key)).toBe(0)
    } finally {
      await redis.quit()
    }
  })
})
