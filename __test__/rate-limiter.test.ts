import { describe, expect, it } from 'vitest'
import { MemoryStore, RateLimiter } from '../lib/index.js'
import { Clock, forEachStore } from './helpers/stores.js'

forEachStore('RateLimiter', (c) => {
  const make = (clock: Clock, opts: { maxRequests?: number; windowSeconds?: number } = {}) =>
    new RateLimiter(c.store(clock), { prefix: c.prefix('rl'), ...opts })

  it('record counts every request and reports whether it fitted, like tekimax', async () => {
    // tekimax's RateLimiter as coded: maxRequests 2 → allowed true,true,false,false; remaining 1,0,0,0.
    const rl = make(new Clock(), { maxRequests: 2, windowSeconds: 5 })
    const got = []
    for (let i = 0; i < 4; i++) got.push(await rl.record('openai'))
    expect(got).toEqual([
      { allowed: true, remaining: 1, resetInSeconds: 5 },
      { allowed: true, remaining: 0, resetInSeconds: 5 },
      { allowed: false, remaining: 0, resetInSeconds: 5 },
      { allowed: false, remaining: 0, resetInSeconds: 5 },
    ])
    expect(await rl.check('openai')).toEqual({ allowed: false, remaining: 0, resetInSeconds: 5 })
  })

  it('check counts nothing and reports the whole window for an unused id', async () => {
    const rl = make(new Clock(), { maxRequests: 3, windowSeconds: 60 })
    for (let i = 0; i < 5; i++) {
      expect(await rl.check('anthropic')).toEqual({ allowed: true, remaining: 3, resetInSeconds: 60 })
    }
  })

  it('defaults to 60 requests per 60 seconds', async () => {
    const rl = new RateLimiter(c.store(new Clock()), { prefix: c.prefix('rl') })
    expect(rl.maxRequests).toBe(60)
    expect(rl.windowSeconds).toBe(60)
    expect(await rl.check('x')).toEqual({ allowed: true, remaining: 60, resetInSeconds: 60 })
  })

  it('is a sliding window: a slot frees exactly when its request leaves the window', async () => {
    const clock = new Clock()
    const rl = make(clock, { maxRequests: 2, windowSeconds: 10 })
    expect((await rl.consume('k')).allowed).toBe(true) // t=0
    clock.advance(4_000)
    expect(await rl.consume('k')).toEqual({ allowed: true, remaining: 0, resetInSeconds: 6 }) // t=4s
    clock.advance(5_999) // t=9.999s: both still inside
    expect(await rl.consume('k')).toEqual({ allowed: false, remaining: 0, resetInSeconds: 1 })
    clock.advance(1) // t=10s: the first left the window
    expect(await rl.consume('k')).toEqual({ allowed: true, remaining: 0, resetInSeconds: 4 })
    clock.advance(3_999) // t=13.999s: the second (t=4s) is still inside
    expect((await rl.consume('k')).allowed).toBe(false)
    clock.advance(1)
    expect((await rl.consume('k')).allowed).toBe(true)
  })

  it('allows no burst across a window boundary (a fixed window would allow 2×)', async () => {
    const clock = new Clock()
    const rl = make(clock, { maxRequests: 5, windowSeconds: 1 })
    clock.advance(900)
    for (let i = 0; i < 5; i++) expect((await rl.consume('b')).allowed).toBe(true)
    clock.advance(200) // a fixed one-second window would have reset here
    expect((await rl.consume('b')).allowed).toBe(false)
  })

  it('never admits more than maxRequests inside any window span', async () => {
    const clock = new Clock()
    const rl = make(clock, { maxRequests: 4, windowSeconds: 3 })
    const admitted: number[] = []
    for (let i = 0; i < 120; i++) {
      clock.advance(137)
      if ((await rl.consume('span')).allowed) admitted.push(clock.t)
    }
    for (let i = 0; i < admitted.length; i++) {
      const inside = admitted.filter((t) => t >= admitted[i] && t < admitted[i] + 3_000).length
      expect(inside).toBeLessThanOrEqual(4)
    }
    // It also admits as many as it may: every span of 3s starting at an admission is full.
    expect(admitted.length).toBeGreaterThanOrEqual(20)
  })

  it('consume records nothing when refused', async () => {
    const clock = new Clock()
    const rl = make(clock, { maxRequests: 1, windowSeconds: 10 })
    expect((await rl.consume('n')).allowed).toBe(true)
    for (let i = 0; i < 10; i++) {
      clock.advance(500)
      expect((await rl.consume('n')).allowed).toBe(false)
    }
    clock.advance(5_000) // t=10s after the only counted request
    expect((await rl.consume('n')).allowed).toBe(true)
  })

  it('keeps limits apart per id and per prefix', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const a = new RateLimiter(store, { maxRequests: 1, prefix: c.prefix('a') })
    const b = new RateLimiter(store, { maxRequests: 1, prefix: c.prefix('b') })
    expect((await a.consume('gpt-4o')).allowed).toBe(true)
    expect((await a.consume('gpt-4o-mini')).allowed).toBe(true)
    expect((await b.consume('gpt-4o')).allowed).toBe(true)
    expect((await a.consume('gpt-4o')).allowed).toBe(false)
  })

  it('concurrent consume from many promises never over-admits', async () => {
    const rl = make(new Clock(), { maxRequests: 25, windowSeconds: 60 })
    const results = await Promise.all(Array.from({ length: 300 }, () => rl.consume('burst')))
    expect(results.filter((r) => r.allowed)).toHaveLength(25)
    expect((await rl.check('burst')).remaining).toBe(0)
  })

  it('concurrent records all count; exactly maxRequests of them fit (tekimax: 5 of 10)', async () => {
    const rl = make(new Clock(), { maxRequests: 5, windowSeconds: 60 })
    const results = await Promise.all(Array.from({ length: 10 }, () => rl.record('openai')))
    expect(results.filter((r) => r.allowed)).toHaveLength(5)
    expect(await rl.check('openai')).toEqual({ allowed: false, remaining: 0, resetInSeconds: 60 })
  })

  it('two limiters on one store share the same counts', async () => {
    const store = c.store(new Clock())
    const prefix = c.prefix('shared')
    const a = new RateLimiter(store, { maxRequests: 3, prefix })
    const b = new RateLimiter(store, { maxRequests: 3, prefix })
    await a.consume('p')
    await b.consume('p')
    expect((await a.check('p')).remaining).toBe(1)
  })
})

describe('RateLimiter on the memory store', () => {
  it('answers with an already-resolved promise (no thread hop)', async () => {
    const rl = new RateLimiter(new MemoryStore(), { maxRequests: 1 })
    const p = rl.consume('sync')
    let settled = false
    p.then(() => (settled = true))
    await Promise.resolve() // one microtask: enough only for an already-resolved promise
    expect(settled).toBe(true)
  })

  it('drops the key once its last request left the window (memory stays bounded)', async () => {
    const clock = new Clock()
    const store = new MemoryStore({ now: clock.now })
    const rl = new RateLimiter(store, { maxRequests: 5, windowSeconds: 1 })
    for (let i = 0; i < 100; i++) await rl.consume(`user-${i}`)
    expect(store.size()).toBe(100)
    clock.advance(1_000)
    expect(store.size()).toBe(0)
  })

  it('works with no store at all (the default MemoryStore)', async () => {
    const rl = new RateLimiter({ maxRequests: 1, prefix: 'default-store-test:' })
    expect((await rl.consume('x')).allowed).toBe(true)
    expect((await rl.consume('x')).allowed).toBe(false)
    const rl2 = new RateLimiter(undefined, { maxRequests: 1, prefix: 'default-store-test:' })
    expect((await rl2.consume('x')).allowed).toBe(false)
  })
})
