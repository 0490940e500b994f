// Disagreements the differential suites found between a class on a MemoryStore and on Redis,
// each pinned on every store.
import { expect, it } from 'vitest'
import { ResponseCache, SemanticCache, SessionStore, codes, createLLMRateLimiter, createRedisBackend } from '../../lib/index.js'
import { ngramEmbedder } from '../helpers/embedder.js'
import { Clock, forEachStore } from '../helpers/stores.js'

forEachStore('differential regressions', (c) => {
  it('SessionStore.append to a session that is not a message list is refused as such, even past maxBytes', async () => {
    // The MemoryStore checked the size first and answered ERR_TOLLGATE_TOO_LARGE; session.lua
    // answers that the session cannot take messages at all, which is the reason.
    const sessions = new SessionStore(c.store(new Clock()), { prefix: c.prefix('reg'), maxBytes: 4 })
    await sessions.save('s', 7)
    await expect(sessions.append('s', { role: 'user', content: 'a long message' })).rejects.toMatchObject({ code: codes.NOT_A_MESSAGE_LIST })
    expect(await sessions.load('s')).toBe(7)
  })

  it('ResponseCache.invalidate and SessionStore.destroy of an expired value resolve false', async () => {
    // Redis deleted the key, still there by its own clock, and answered true.
    const clock = new Clock()
    const store = c.store(clock)
    const cache = new ResponseCache(store, { prefix: c.prefix('reg'), ttl: 10 })
    const sessions = new SessionStore(store, { prefix: c.prefix('reg'), ttl: 10 })
    const messages = [{ role: 'user', content: 'Hi' }]
    await cache.set('gpt-4o', messages, 'hello')
    await sessions.save('s', { messages: [] })
    clock.advance(9_999)
    expect(await cache.invalidate('gpt-4o', messages)).toBe(true)
    expect(await sessions.destroy('s')).toBe(true)
    await cache.set('gpt-4o', messages, 'hello')
    await sessions.save('s', { messages: [] })
    clock.advance(10_000)
    expect(await cache.invalidate('gpt-4o', messages)).toBe(false)
    expect(await sessions.destroy('s')).toBe(false)
    clock.advance(-10_000) // what was deleted stays deleted
    expect(await cache.get('gpt-4o', messages)).toBeNull()
    expect(await sessions.load('s')).toBeNull()
  })

  it('SemanticCache.clear counts only the entries that had not expired', async () => {
    // On Redis it counted every entry still in its set, expired by the cache's clock or not.
    const clock = new Clock()
    const cache = new SemanticCache(c.store(clock), { prefix: c.prefix('reg'), ttl: 10, embed: ngramEmbedder(32).embed })
    const ask = (q: string) => [{ role: 'user', content: q }]
    await cache.set('gpt-4o', ask('What is Node.js?'), 'a runtime')
    clock.advance(5_000)
    await cache.set('gpt-4o', ask('What is Rust?'), 'a language')
    clock.advance(5_000) // the first has expired, the second has not
    expect(await cache.clear()).toBe(1)
    expect((await cache.stats()).entries).toBe(0)
  })

  it('the job limiter does not admit a minute again when the clock steps back into the previous minute', async () => {
    // The in-process limits started the earlier minute afresh (forgetting the newer one's
    // count); jobs.lua keeps counting in the newer minute.
    const clock = new Clock(Date.UTC(2026, 0, 1, 12, 0, 30))
    const store = c.store(clock)
    const backend = c.kind === 'memory' ? undefined : createRedisBackend({ client: store, keyPrefix: c.prefix('reg'), heartbeatIntervalMs: 60_000, instanceTimeoutMs: 120_000 })
    const limiter = createLLMRateLimiter({
      models: { m: { requestsPerMinute: 1 } },
      resourceEstimationsPerJob: { default: { estimatedNumberOfRequests: 1, maxWaitMS: { m: 0 } } },
      now: clock.now,
      ratioAdjustmentConfig: { adjustmentIntervalMs: 0 },
      ...(backend ? { backend } : {}),
    })
    const job = async () => ({ requestCount: 1, inputTokens: 0, cachedTokens: 0, outputTokens: 0, data: 'ran' })
    try {
      expect(await limiter.queueJob({ jobId: '1', job })).toEqual({ data: 'ran', modelUsed: 'm' })
      clock.advance(-31_000) // 11:59:59
      await expect(limiter.queueJob({ jobId: '2', job })).rejects.toMatchObject({ code: codes.NO_CAPACITY })
      clock.advance(31_000)
      await expect(limiter.queueJob({ jobId: '3', job })).rejects.toMatchObject({ code: codes.NO_CAPACITY })
      clock.advance(30_000) // 12:01:00
      expect(await limiter.queueJob({ jobId: '4', job })).toEqual({ data: 'ran', modelUsed: 'm' })
    } finally {
      await limiter.stop()
    }
  })
})
