// ProviderLimiter (a global per-provider limit shared by workers): points per duration per provider and scope, shared through the
// store; self-expiring keys in the multi-worker key reference's layout; health().
import Redis from 'ioredis'
import { describe, expect, it } from 'vitest'
import { ProviderLimiter } from '../lib/index.js'
import { Clock, forEachStore, redisUrl } from './helpers/stores.js'

forEachStore('ProviderLimiter', (c) => {
  it('takes points until the period ends, then refills', async () => {
    const clock = new Clock()
    const p = c.prefix('prov')
    const l = new ProviderLimiter(c.store(clock), { providers: { openai: { points: 3, duration: 60, keyPrefix: `${p}openai` } } })
    const got = []
    for (let i = 0; i < 4; i++) got.push(await l.tryConsume('openai', 'global'))
    expect(got.map((d) => [d.allowed, d.remaining])).toEqual([
      [true, 2],
      [true, 1],
      [true, 0],
      [false, 0],
    ])
    expect(got[3]).toMatchObject({ retryInMs: 60_000, resetAt: clock.t + 60_000 })
    clock.advance(30_000)
    expect((await l.tryConsume('openai')).retryInMs).toBe(30_000)
    // Scopes are separate counters.
    expect((await l.tryConsume('openai', 'user-1')).remaining).toBe(2)
    clock.advance(30_000)
    expect(await l.tryConsume('openai')).toMatchObject({ allowed: true, remaining: 2, resetAt: clock.t + 60_000 })
    await expect(l.tryConsume('nope')).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
  })

  it('run() waits for a point and counts running, queued and done', async () => {
    const p = c.prefix('run')
    const l = new ProviderLimiter(c.store(new Clock()), { providers: { anthropic: { points: 1, duration: 60, keyPrefix: `${p}a` } } })
    expect(await l.run('anthropic', () => 'one')).toBe('one')
    await expect(l.run('anthropic', () => 'two', { maxWaitMs: 20 })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_NO_CAPACITY' })
    const h = await l.health()
    expect(h.rateLimiting.local).toEqual({ anthropic: { running: 0, queued: 0, done: 1 } })
    expect(h.rateLimiting.mode).toBe(c.kind === 'memory' ? 'local' : 'distributed')
    expect(h.rateLimiting.distributed.anthropic).toEqual({ type: c.kind === 'memory' ? 'local' : 'distributed', redis: c.kind !== 'memory' })
    expect(h.redis.connected).toBe(c.kind !== 'memory')
    if (c.kind !== 'memory') {
      expect(h.status).toBe('ok')
      expect(h.redis.usedMemory).toMatch(/^[\d.]+[BKMG]$/)
      expect(Number(h.redis.connectedClients)).toBeGreaterThan(0)
    }
  })
})

describe('ProviderLimiter on Redis: the key layout of a multi-worker app', () => {
  it('a hash with points and expire that expires with its period', async () => {
    const prefix = `t:seedkeys:${process.pid}:${Date.now()}:openai`
    const l = new ProviderLimiter(redisUrl(), { providers: { openai: { points: 50_000, duration: 60, keyPrefix: prefix } } })
    await l.tryConsume('openai', 'global')
    await l.tryConsume('openai', 'global')
    const redis = new Redis(redisUrl())
    try {
      const key = `${prefix}:global`
      expect(await redis.keys(`${prefix}:*`)).toEqual([key])
      const h = await redis.hgetall(key)
      expect(h.points).toBe('49998')
      expect(Number(h.expire)).toBeGreaterThan(Date.now())
      const ttl = await redis.pttl(key)
      expect(ttl).toBeGreaterThan(50_000)
      expect(ttl).toBeLessThanOrEqual(60_000)
    } finally {
      redis.disconnect()
    }
  })
})

describe('ProviderLimiter.run', () => {
  it('waits for the refill, then runs; health counts it', async () => {
    const { MemoryStore } = await import('../lib/index.js')
    const l = new ProviderLimiter(new MemoryStore(), { providers: { x: { points: 1, duration: 0.2 } } })
    expect(await l.run('x', () => 1)).toBe(1)
    const t = performance.now()
    const second = l.run('x', async () => 2)
    await new Promise((r) => setTimeout(r, 20))
    expect((await l.health()).rateLimiting.local.x).toEqual({ running: 0, queued: 1, done: 1 })
    expect(await second).toBe(2)
    const waited = performance.now() - t
    expect(waited).toBeGreaterThanOrEqual(150)
    expect(waited).toBeLessThan(1_000)
    expect((await l.health()).rateLimiting.local.x).toEqual({ running: 0, queued: 0, done: 2 })
  })
})
