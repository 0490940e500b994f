// Leased limits (docs/leases.md) in one process: settings, exactness over many holders with an
// injected clock, giving back (close, idle), store failures, and the MemoryStore no-op.
import { afterAll, describe, expect, it, onTestFinished, vi } from 'vitest'
import { MemoryStore, RateLimiter, RedisStore, TokenBudget, codes } from '../lib/index.js'
import { rng } from './helpers/prng.js'
import { startProxy } from './helpers/proxy.js'
import { Clock, redisUrl } from './helpers/stores.js'

const stores: RedisStore[] = []
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()))
})
let n = 0
const prefix = (name: string) => `t:lease:${name}:${Date.now()}:${++n}:`
function redis(clock?: Clock, url = redisUrl(), o: object = {}) {
  const s = new RedisStore(url, { ...(clock ? { now: clock.now } : {}), ...o })
  stores.push(s)
  return s
}

describe('lease settings', () => {
  const store = new MemoryStore()
  const bad: [object, string, string][] = [
    [{ seconds: 0 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: -1 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: Infinity }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: NaN }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: 61 }, 'RangeError', codes.OUT_OF_RANGE], // longer than the window
    [{ share: 11 }, 'RangeError', codes.OUT_OF_RANGE], // above the limit
    [{ share: 0 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ share: 2.5 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ idleSeconds: 0 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: 1, idleSeconds: 2 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: '1' }, 'TypeError', codes.INVALID_ARG],
    [{ share: '3' }, 'TypeError', codes.INVALID_ARG],
  ]
  it.each(bad)('RateLimiter refuses lease %o', (lease, type, code) => {
    try {
      new RateLimiter(store, { maxRequests: 10, windowSeconds: 60, lease: lease as any })
      expect.unreachable()
    } catch (e: any) {
      expect(e.constructor.name).toBe(type)
      expect(e.code).toBe(code)
      expect(e.message).toMatch(/options\.lease/)
    }
  })

  it('a share above the limit says the limit; TokenBudget checks against maxTokens and its period', () => {
    expect(() => new RateLimiter(store, { maxRequests: 10, lease: { share: 11 } })).toThrow(/at most the limit \(10\)/)
    expect(() => new TokenBudget(store, { maxTokens: 100, lease: { share: 101 } })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => new TokenBudget(store, { maxTokens: 100, periodSeconds: 10, lease: { seconds: 11 } })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => new TokenBudget(store, { maxTokens: 0, lease: true })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
  })

  it('refuses an unknown setting, naming the closest, and a lease that is not true/false/an object', () => {
    try {
      new RateLimiter(store, { lease: { secnds: 1 } } as any)
      expect.unreachable()
    } catch (e: any) {
      expect(e).toBeInstanceOf(TypeError)
      expect(e.code).toBe(codes.UNKNOWN_OPTION)
      expect(e.suggestion).toBe('seconds')
    }
    expect(() => new TokenBudget(store, { maxTokens: 5, lease: { shares: 1 } } as any)).toThrow(expect.objectContaining({ code: codes.UNKNOWN_OPTION, suggestion: 'share' }))
    expect(() => new RateLimiter(store, { lease: 1 } as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new RateLimiter(store, { lease: null } as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new RateLimiter(store, { leese: true } as any)).toThrow(expect.objectContaining({ code: codes.UNKNOWN_OPTION, suggestion: 'lease' }))
  })

  it('defaults: a tenth of the window (at most 1 s), the whole limit, a quarter of the lease idle', () => {
    expect(new RateLimiter(store, { maxRequests: 10, windowSeconds: 60, lease: true }).lease).toEqual({ seconds: 1, share: 10, idleSeconds: 0.25 })
    expect(new RateLimiter(store, { maxRequests: 10, windowSeconds: 2, lease: true }).lease).toEqual({ seconds: 0.2, share: 10, idleSeconds: 0.05 })
    expect(new TokenBudget(store, { maxTokens: 500, lease: { share: 50 } }).lease).toEqual({ seconds: 1, share: 50, idleSeconds: 0.25 })
    expect(new RateLimiter(store, { maxRequests: 10 }).lease).toBeNull()
    expect(new RateLimiter(store, { maxRequests: 10, lease: false }).lease).toBeNull()
  })
})

describe('lease on a MemoryStore: accepted, and nothing changes', () => {
  it('RateLimiter and TokenBudget answer exactly as without it', async () => {
    const clock = new Clock()
    const store = new MemoryStore({ now: clock.now })
    const plain = new RateLimiter(store, { maxRequests: 3, windowSeconds: 10, prefix: 'a:' })
    const leased = new RateLimiter(store, { maxRequests: 3, windowSeconds: 10, prefix: 'b:', lease: true })
    const pb = new TokenBudget(store, { maxTokens: 100, prefix: 'c:' })
    const lb = new TokenBudget(store, { maxTokens: 100, prefix: 'd:', lease: { share: 10 } })
    for (let i = 0; i < 6; i++) {
      expect(await leased.consume('x')).toEqual(await plain.consume('x'))
      expect(await lb.record('x', 30)).toEqual(await pb.record('x', 30))
      clock.advance(3000)
    }
    expect(leased.stats().lease).toBeUndefined()
    expect(leased.stats().redisCalls).toBe(0)
    await leased.close()
    await lb.close()
  })
})

describe('leased RateLimiter on Redis', () => {
  it('answers from its lease: one round trip for many decisions, and exact at the limit', async () => {
    const clock = new Clock()
    const rl = new RateLimiter(redis(clock), { maxRequests: 10, windowSeconds: 10, prefix: prefix('one'), lease: true })
    const got = []
    for (let i = 0; i < 12; i++) got.push((await rl.consume('k')).allowed)
    expect(got).toEqual([...Array(10).fill(true), false, false])
    // One lease of the whole limit (the first ask is the limit's rate over a lease: 10 × 1/10,
    // then the want follows the demand), a few renewals, and refusals answered locally.
    expect(rl.stats().redisCalls).toBeLessThanOrEqual(6)
    expect(rl.stats().decisions).toBe(12)
    await rl.close()
  })

  it('a plain limiter on a leased key fails loudly, never silently apart', async () => {
    const clock = new Clock()
    const store = redis(clock)
    const p = prefix('mixed')
    const leased = new RateLimiter(store, { maxRequests: 10, windowSeconds: 10, prefix: p, lease: true })
    await leased.consume('k')
    const plain = new RateLimiter(store, { maxRequests: 10, windowSeconds: 10, prefix: p })
    const err = await plain.consume('k').catch((e) => e)
    expect(err.code).toBe(codes.STORE_ERROR)
    expect(err.message).toMatch(/WRONGTYPE/)
    await leased.close()
  })

  it('a burst of concurrent calls on a cold id admits exactly the limit, in a few round trips', async () => {
    const clock = new Clock()
    const store = redis(clock)
    const p = prefix('burst')
    const a = new RateLimiter(store, { maxRequests: 100, windowSeconds: 10, prefix: p, lease: true })
    const b = new RateLimiter(store, { maxRequests: 100, windowSeconds: 10, prefix: p, lease: true })
    const rs = await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).consume('k')))
    expect(rs.filter((r) => r.allowed)).toHaveLength(100)
    expect(a.stats().redisCalls + b.stats().redisCalls).toBeLessThan(40)
    await Promise.all([a.close(), b.close()])
  })

  it('keeps state for a bounded number of ids: 12,000 ids, each given back, leave at most 10,000', async () => {
    const clock = new Clock()
    const rl = new RateLimiter(redis(clock), { maxRequests: 10, windowSeconds: 10, prefix: prefix('ids'), lease: { seconds: 1 } })
    for (let i = 0; i < 12_000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => rl.consume(`id${i + j}`)))
      await rl.close()
    }
    // Every id holds nothing now; at most 10,000 are remembered (their rates).
    expect(rl.stats().lease).toMatchObject({ ids: 0, units: 0, used: 0 })
    expect(rl.stats().lease!.known).toBeGreaterThan(9000)
    expect(rl.stats().lease!.known).toBeLessThanOrEqual(10_000)
    expect((await rl.consume('id0')).allowed).toBe(true)
    await rl.close()
  }, 30_000)

  it('many holders, random decisions: at most the limit in every window, counted from the times used', async () => {
    // Lease timers (ends, idle returns) run on the same injected time as the clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    onTestFinished(() => {
      vi.useRealTimers()
    })
    for (const seed of [1, 2, 3]) {
      const r = rng(seed)
      const clock = new Clock()
      const store = redis(clock)
      const p = prefix(`exact-${seed}`)
      const max = 20
      const windowMs = 1000
      const holders = Array.from({ length: 4 }, () => new RateLimiter(store, { maxRequests: max, windowSeconds: windowMs / 1000, prefix: p, lease: { seconds: 0.3, idleSeconds: 0.1 } }))
      const admitted: number[] = []
      for (let i = 0; i < 600; i++) {
        const d = r.int(25)
        clock.advance(d)
        vi.advanceTimersByTime(d)
        const h = r.pick(holders)
        const op = r.int(10)
        if (op === 0) await h.close()
        else if ((await h.consume('k')).allowed) admitted.push(clock.t)
      }
      admitted.sort((a, b) => a - b)
      for (let i = 0; i + max < admitted.length; i++) expect(admitted[i + max] - admitted[i], `seed ${seed} at ${i}`).toBeGreaterThanOrEqual(windowMs)
      // Not starved either: over 600 × 12 ms ≈ 7 windows, most of the capacity was used.
      expect(admitted.length).toBeGreaterThan(max * 4)
      await Promise.all(holders.map((h) => h.close()))
    }
  })

  it('close() gives the unused part back at once; what was used still counts for its window', async () => {
    const clock = new Clock()
    const store = redis(clock)
    const p = prefix('close')
    const a = new RateLimiter(store, { maxRequests: 10, windowSeconds: 10, prefix: p, lease: { seconds: 1, share: 6 } })
    const b = new RateLimiter(store, { maxRequests: 10, windowSeconds: 10, prefix: p, lease: { seconds: 1, share: 10 } })
    await a.consume('k')
    await a.consume('k')
    // Two used: under the lease `a` holds now and, if it took two, the one it gave back.
    const held = a.stats().lease!
    expect(held.ids).toBe(1)
    let got = 0
    while ((await b.consume('k')).allowed) got++
    expect(got).toBe(10 - (2 - held.used) - held.units)
    await a.close()
    expect(a.stats().lease).toMatchObject({ ids: 0, units: 0, used: 0 })
    // (`b` was refused: it asks Redis again after at most a quarter of its lease time.)
    clock.advance(250)
    while ((await b.consume('k')).allowed) got++
    expect(got).toBe(8)
    // The two used by `a` leave the window 10 s after they were used.
    clock.advance(10_000)
    await b.close()
    const c = new RateLimiter(store, { maxRequests: 10, windowSeconds: 10, prefix: p, lease: true })
    expect((await c.check('k')).allowed).toBe(true)
    await c.close()
  })

  it('an idle process gives its lease back by itself (unref timer), a busy one keeps asking for more', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const clock = new Clock()
      const store = redis(clock)
      const p = prefix('idle')
      const idle = new RateLimiter(store, { maxRequests: 100, windowSeconds: 10, prefix: p, lease: { seconds: 2, idleSeconds: 0.5 } })
      const busy = new RateLimiter(store, { maxRequests: 100, windowSeconds: 10, prefix: p, lease: { seconds: 2, idleSeconds: 0.5 } })
      await idle.consume('k')
      const held = idle.stats().lease!.units
      expect(held).toBeGreaterThan(1)
      clock.advance(600)
      const calls = idle.stats().redisCalls
      vi.advanceTimersByTime(600)
      await vi.waitFor(() => expect(idle.stats().redisCalls).toBe(calls + 1))
      await vi.waitFor(() => expect(idle.stats().lease!.ids).toBe(0))
      // Its last want (a fair share is kept for a holder that may ask again) ends 2 lease times
      // after it asked; then everything but its one used request is free for the busy one.
      clock.advance(3500)
      let got = 0
      while ((await busy.consume('k')).allowed) got++
      expect(got).toBe(99)
      // The busy one took it in leases that grew with its rate.
      expect(busy.stats().redisCalls).toBeLessThan(12)
    } finally {
      vi.useRealTimers()
    }
  })

  it('a crashed holder (never gives back) stops counting one window after its lease ends', async () => {
    const clock = new Clock()
    const store = redis(clock)
    const p = prefix('crash')
    const dead = new RateLimiter(store, { maxRequests: 10, windowSeconds: 10, prefix: p, lease: { seconds: 1, share: 5 } })
    await dead.consume('k') // at t0: a lease of 1 (10 × 1 s / 10 s), used; it is never given back
    expect(dead.stats().lease!.units).toBe(1)
    clock.advance(2000) // its want (2 lease times) is gone; its lease still counts
    const b = new RateLimiter(store, { maxRequests: 10, windowSeconds: 10, prefix: p, lease: { seconds: 1 } })
    const drain = async () => {
      let got = 0
      while ((await b.consume('k')).allowed) got++
      return got
    }
    expect(await drain()).toBe(9) // b's count until t0 + 12 s
    clock.advance(8_500) // t0 + 10.5 s
    expect(await drain()).toBe(0)
    clock.advance(500) // t0 + 11 s: the dead lease ends at t0 + 1 s and counts one window more
    expect(await drain()).toBe(1)
    clock.advance(1000) // t0 + 12 s: b's own leave the window
    expect(await drain()).toBe(9)
    await b.close()
  })

  it('Redis going away: the lease still answers, never beyond it; then the failure policy', async () => {
    const proxy = await startProxy(Number(new URL(redisUrl()).port))
    try {
      const clock = new Clock()
      const store = redis(clock, proxy.url, { connectTimeoutMs: 200, commandTimeoutMs: 200, storeRetryMs: 50 })
      const p = prefix('outage')
      const closed = new RateLimiter(store, { maxRequests: 100, windowSeconds: 10, prefix: p, lease: { seconds: 1, share: 5 } })
      const open = new RateLimiter(store, { maxRequests: 100, windowSeconds: 10, prefix: `${p}o:`, lease: { seconds: 1, share: 5 }, onStoreError: 'fail-open' })
      await closed.consume('k')
      await open.consume('k')
      expect(closed.stats().lease!.units).toBe(5)
      proxy.refuse()
      // Four more from the lease, not one beyond.
      for (let i = 0; i < 4; i++) expect(await closed.consume('k')).toMatchObject({ allowed: true })
      const err = await closed.consume('k').catch((e) => e)
      expect(err.code).toMatch(/^ERR_TOLLGATE_STORE_(UNAVAILABLE|TIMEOUT)$/)
      // fail-open: the lease first, then admitted as the policy says, marked.
      for (let i = 0; i < 4; i++) expect((await open.consume('k')).fallback).toBeUndefined()
      expect(await open.consume('k')).toMatchObject({ allowed: true, fallback: 'fail-open' })
      proxy.open()
      await new Promise((r) => setTimeout(r, 100))
      // Back: what fail-open admitted is counted in Redis (replayed through the lease script).
      expect(await open.flush()).toBe(true)
      expect(open.stats().replayed).toBe(1)
      await open.close() // (gives back, and says it is done: no fair share is kept for it)
      const after = new RateLimiter(store, { maxRequests: 100, windowSeconds: 10, prefix: `${p}o:`, lease: { seconds: 1, share: 100 } })
      let got = 0
      while ((await after.consume('k')).allowed) got++
      expect(got).toBe(100 - 5 - 1)
      await after.close()
      await closed.close()
    } finally {
      await proxy.close()
    }
  })
})

describe('leased limits on the server clock (no injected clock)', () => {
  it('two holders share one limit exactly, each answering from its lease', async () => {
    const store = redis()
    const p = prefix('server-clock')
    const a = new RateLimiter(store, { maxRequests: 50, windowSeconds: 60, prefix: p, lease: { seconds: 0.2 } })
    const b = new RateLimiter(store, { maxRequests: 50, windowSeconds: 60, prefix: p, lease: { seconds: 0.2 } })
    let got = 0
    for (let i = 0; i < 40; i++) if ((await a.consume('k')).allowed) got++
    for (let i = 0; i < 40; i++) if ((await b.consume('k')).allowed) got++
    await a.close()
    // `b` was refused: it asks Redis again a quarter of a lease (50 ms of real time) later.
    await new Promise((r) => setTimeout(r, 60))
    for (let i = 0; i < 40; i++) if ((await b.consume('k')).allowed) got++
    expect(got).toBe(50)
    expect(a.stats().redisCalls + b.stats().redisCalls).toBeLessThan(25)
    await b.close()
  })
})

describe('leased limits when Redis goes away', () => {
  it("'local': past the lease, the in-process twin answers, marked", async () => {
    const proxy = await startProxy(Number(new URL(redisUrl()).port))
    try {
      const clock = new Clock()
      const store = redis(clock, proxy.url, { connectTimeoutMs: 200, commandTimeoutMs: 200, storeRetryMs: 50 })
      const rl = new RateLimiter(store, { maxRequests: 8, windowSeconds: 10, prefix: prefix('local'), lease: { seconds: 1, share: 3 }, onStoreError: 'local' })
      await rl.consume('k')
      expect(rl.stats().lease!.units).toBeLessThanOrEqual(3)
      const left = rl.stats().lease!.units - 1
      proxy.refuse()
      for (let i = 0; i < left; i++) expect((await rl.consume('k')).fallback).toBeUndefined()
      const r = await rl.consume('k')
      expect(r).toMatchObject({ allowed: true, fallback: 'local' })
      await rl.close()
    } finally {
      await proxy.close()
    }
  })

  it('TokenBudget: reservations from the lease go on; past it, fail-closed rejects', async () => {
    const proxy = await startProxy(Number(new URL(redisUrl()).port))
    try {
      const clock = new Clock()
      const store = redis(clock, proxy.url, { connectTimeoutMs: 200, commandTimeoutMs: 200, storeRetryMs: 50 })
      const b = new TokenBudget(store, { maxTokens: 1000, prefix: prefix('budget-outage'), lease: { seconds: 1, share: 100 } })
      const first = await b.reserve('u', 100)
      expect(first.allowed).toBe(true)
      proxy.refuse()
      // The lease (100) is all held: a settle below the estimate frees room in-process.
      expect(await b.settle(first.hold!, 40)).toMatchObject({ allowed: true })
      expect((await b.reserve('u', 60)).allowed).toBe(true)
      const err = await b.reserve('u', 1).catch((e) => e)
      expect(err.code).toMatch(/^ERR_TOLLGATE_STORE_(UNAVAILABLE|TIMEOUT)$/)
      await b.close()
    } finally {
      await proxy.close()
    }
  })
})

describe('leased TokenBudget on Redis', () => {
  it('reserves and settles in-process; others see the lease; close turns open reservations into holds', async () => {
    const clock = new Clock()
    const store = redis(clock)
    const p = prefix('budget')
    const a = new TokenBudget(store, { maxTokens: 1000, prefix: p, lease: { seconds: 1, share: 400 } })
    const plain = new TokenBudget(store, { maxTokens: 1000, prefix: p })
    const r1 = await a.reserve('u', 100)
    expect(r1.allowed).toBe(true)
    expect(r1.hold!.id).toMatch(/^lease:/)
    const leased = a.stats().lease!.units
    expect(leased).toBeGreaterThanOrEqual(100)
    // A plain process on the same bucket sees the lease as reserved.
    expect(await plain.check('u')).toMatchObject({ used: 0, reserved: leased, remaining: 1000 - leased })
    const r2 = await a.reserve('u', 50)
    expect(r2.allowed).toBe(true)
    const calls = a.stats().redisCalls
    await a.settle(r1.hold!, 80)
    expect(a.stats().redisCalls).toBe(calls)
    // Given back: 80 used, the open reservation of 50 a hold of its own, the rest free.
    await a.close()
    expect(await plain.check('u')).toMatchObject({ used: 80, reserved: 50, remaining: 870 })
    // ...which settles in Redis now.
    await a.settle(r2.hold!, 20)
    expect(await plain.check('u')).toMatchObject({ used: 100, reserved: 0, remaining: 900 })
  })

  it('never grants reservations beyond maxTokens across holders, and records always count', async () => {
    const clock = new Clock()
    const store = redis(clock)
    const p = prefix('budget-many')
    const holders = Array.from({ length: 3 }, () => new TokenBudget(store, { maxTokens: 500, prefix: p, lease: { seconds: 1, idleSeconds: 0.5 } }))
    const r = rng(7)
    let granted = 0
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    onTestFinished(() => {
      vi.useRealTimers()
    })
    for (let i = 0; i < 200; i++) {
      const d = r.int(50)
      clock.advance(d)
      vi.advanceTimersByTime(d)
      const h = r.pick(holders)
      const x = await h.reserve('b', 1 + r.int(20))
      if (x.allowed) {
        granted += x.hold!.tokens
        await h.settle(x.hold!, x.hold!.tokens)
      }
      if (r.chance(0.05)) await h.close()
    }
    expect(granted).toBeLessThanOrEqual(500)
    expect(granted).toBeGreaterThan(450)
    await Promise.all(holders.map((h) => h.close()))
    const plain = new TokenBudget(store, { maxTokens: 500, prefix: p })
    expect(await plain.check('b')).toMatchObject({ used: granted, reserved: 0 })
    // A record beyond what is left still counts.
    const last = new TokenBudget(store, { maxTokens: 500, prefix: p, lease: true })
    expect(await last.record('b', 600)).toMatchObject({ allowed: false })
    expect((await plain.check('b')).used).toBe(granted + 600)
  })

  it("a holder that never gives back: its lease counts for the rest of the period", async () => {
    const clock = new Clock()
    const store = redis(clock)
    const p = prefix('budget-crash')
    const dead = new TokenBudget(store, { maxTokens: 100, periodSeconds: 60, prefix: p, lease: { seconds: 1, share: 30 } })
    await dead.record('b', 10)
    const units = dead.stats().lease!.units
    expect(units).toBeGreaterThanOrEqual(10)
    const plain = new TokenBudget(store, { maxTokens: 100, periodSeconds: 60, prefix: p })
    clock.advance(30_000) // long past the lease
    expect(await plain.check('b')).toMatchObject({ used: 0, reserved: units })
    clock.advance(30_000) // a new period
    expect(await plain.check('b')).toMatchObject({ used: 0, reserved: 0 })
  })
})
