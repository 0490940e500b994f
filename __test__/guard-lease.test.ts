// The guard's leased limits (docs/leases.md, docs/guard.md): settings, decisions answered from
// leases in-process with the rest in one round trip, all or nothing across leased and unleased
// limits, settlement, reset, store failures, and the MemoryStore no-op.
import { afterAll, describe, expect, it } from 'vitest'
import { Guard, MemoryStore, Quota, RedisStore, codes } from '../lib/index.js'
import type { GuardDecision, GuardLimit } from '../lib/index.js'
import { startProxy } from './helpers/proxy.js'
import { Clock, clusterUrls, redisUrl } from './helpers/stores.js'

const stores: RedisStore[] = []
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()))
})
let n = 0
const prefix = (name: string) => `t:glease:${name}:${Date.now()}:${++n}:`
function redis(clock?: Clock, url = redisUrl(), o: object = {}) {
  const s = new RedisStore(url, { ...(clock ? { now: clock.now } : {}), ...o })
  stores.push(s)
  return s
}
const req = (tokens = 100, maxTokens = 100) => ({ model: 'gpt-4o-mini', tokens, maxTokens })
const T0 = Date.UTC(2026, 5, 1)

describe('guard lease settings', () => {
  const store = new MemoryStore()
  const rpm = (lease: unknown): GuardLimit => ({ id: 'rpm', scope: 'all', requests: 10, per: '1m', lease: lease as any })
  const bad: [unknown, string, string][] = [
    [{ seconds: 0 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: -1 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: NaN }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: 61 }, 'RangeError', codes.OUT_OF_RANGE], // longer than the window
    [{ share: 11 }, 'RangeError', codes.OUT_OF_RANGE], // above the limit
    [{ share: 0 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ idleSeconds: 0 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: 1, idleSeconds: 2 }, 'RangeError', codes.OUT_OF_RANGE],
    [{ seconds: '1' }, 'TypeError', codes.INVALID_ARG],
    [1, 'TypeError', codes.INVALID_ARG],
    [null, 'TypeError', codes.INVALID_ARG],
  ]
  it.each(bad)('a limit refuses lease %o, naming the limit', (lease, type, code) => {
    try {
      new Guard({ store, limits: [rpm(lease)] })
      expect.unreachable()
    } catch (e: any) {
      expect(e.constructor.name).toBe(type)
      expect(e.code).toBe(code)
      expect(e.message).toMatch(/options\.limits\[0\]\.lease/)
    }
  })

  it('the share above the limit says the limit; the guard-wide lease is checked against each limit it applies to', () => {
    expect(() => new Guard({ store, limits: [rpm({ share: 11 })] })).toThrow(/at most the limit \(10\)/)
    expect(() => new Guard({ store, lease: { share: 50 }, limits: [{ id: 'tpm', scope: 'all', tokens: 40, per: '1m' }] })).toThrow(
      expect.objectContaining({ code: codes.OUT_OF_RANGE, message: expect.stringMatching(/options\.lease\.share must be at most the limit \(40\)/) }),
    )
    expect(() => new Guard({ store, lease: { seconds: 0 }, limits: [] })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => new Guard({ store, limits: [{ id: 'z', scope: 'all', requests: 0, per: '1m', lease: true }] })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
  })

  it('refuses unknown settings (naming the closest), and a lease on a period or concurrency limit', () => {
    expect(() => new Guard({ store, limits: [rpm({ secnds: 1 })] })).toThrow(expect.objectContaining({ code: codes.UNKNOWN_OPTION, suggestion: 'seconds' }))
    expect(() => new Guard({ store, lease: { shares: 1 }, limits: [] } as any)).toThrow(expect.objectContaining({ code: codes.UNKNOWN_OPTION, suggestion: 'share' }))
    expect(() => new Guard({ store, limits: [{ id: 'c', scope: 'all', concurrent: 2, lease: true }] })).toThrow(
      expect.objectContaining({ code: codes.INVALID_ARG, message: expect.stringMatching(/concurrent.*sliding-window/) }),
    )
    expect(() => new Guard({ store, limits: [{ id: 'd', scope: 'all', usd: 1, per: 'month', lease: true }] })).toThrow(
      expect.objectContaining({ code: codes.INVALID_ARG, message: expect.stringMatching(/calendar period/) }),
    )
    // false is accepted anywhere (no lease).
    expect(() => new Guard({ store, limits: [{ id: 'c', scope: 'all', concurrent: 2, lease: false }] })).not.toThrow()
  })

  it('the guard-wide lease applies to request and token windows only; a limit opts out with false', () => {
    const store = redis()
    const g = new Guard({
      store,
      prefix: prefix('which'),
      lease: { seconds: 0.5 },
      limits: [
        { id: 'rpm', scope: 'all', requests: 10, per: '1m' },
        { id: 'tpm', scope: 'all', tokens: 1000, per: '1m' },
        { id: 'plain', scope: 'all', tokens: 1000, per: '1m', lease: false },
        { id: 'usd', scope: 'all', usd: 1, per: '1h' },
        { id: 'day', scope: 'all', requests: 100, per: 'day' },
        { id: 'conc', scope: 'all', concurrent: 2 },
        { id: 'own', scope: 'all', usd: 5, per: '1h', lease: { share: 1 } },
      ],
    })
    // The policy says what each limit allows, not how this process decides it.
    expect(g.policy[0]).toEqual({ id: 'rpm', requests: 10, per: '1m' })
    expect(g.policy[6]).toEqual({ id: 'own', usd: 5, per: '1h' })
    expect(g.leases).toEqual({
      rpm: { seconds: 0.5, share: 10, idleSeconds: 0.125 },
      tpm: { seconds: 0.5, share: 1000, idleSeconds: 0.125 },
      own: { seconds: 1, share: 1, idleSeconds: 0.25 },
    })
  })
})

describe('guard lease on a MemoryStore: accepted, and nothing changes', () => {
  it('answers exactly as without it', async () => {
    const run = async (lease: boolean) => {
      const clock = new Clock(T0)
      const g = new Guard({ store: new MemoryStore({ now: clock.now }), lease, limits: [{ id: 'rpm', scope: 'all', requests: 3, per: '1m' }, { id: 'tpm', scope: 'all', tokens: 500, per: '1m' }] })
      expect(g.leases).toEqual({})
      const out: unknown[] = []
      for (let i = 0; i < 5; i++) {
        const d = await g.acquire({}, req(100, 50))
        out.push([d.ok, d.limit, d.remaining])
        if (d.ok) await d.settle({ inputTokens: 100, outputTokens: 10 })
        clock.advance(1_000)
      }
      await g.close()
      return out
    }
    expect(await run(true)).toEqual(await run(false))
  })
})

describe('leased guard limits on Redis', () => {
  it('answers from its leases: no round trip per decision, and exact at the limit across holders', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const p = prefix('exact')
    const limits: GuardLimit[] = [{ id: 'rpm', scope: (c: any) => c.user, requests: 50, per: '1m', lease: { seconds: 1, share: 10 } }]
    const a = new Guard({ store, prefix: p, limits })
    const b = new Guard({ store, prefix: p, limits })
    let admitted = 0
    for (let i = 0; i < 40; i++) {
      for (const g of [a, b]) {
        const d = await g.acquire({ user: 'u' }, req())
        if (d.ok) {
          admitted++
          await d.settle({ inputTokens: 10, outputTokens: 10 })
        }
      }
    }
    expect(admitted).toBe(50)
    // Lease round trips only: far fewer than the 80 decisions.
    expect(a.stats().redisCalls + b.stats().redisCalls).toBeLessThan(30)
    expect(a.stats().decisions).toBe(40)
    // Another scope has its own limit.
    expect((await a.acquire({ user: 'v' }, req())).ok).toBe(true)
    await Promise.all([a.close(), b.close()])
  })

  it('a call whose limits are all leased costs no round trip while the lease has room', async () => {
    const clock = new Clock(T0)
    const g = new Guard({
      store: redis(clock),
      prefix: prefix('free'),
      lease: { seconds: 1, share: 1000 },
      limits: [
        // A lease as long as the window: the first ask is the share (max × lease / window).
        { id: 'rpm', scope: 'all', requests: 1000, per: '1s' },
        { id: 'tpm', scope: 'all', tokens: 100_000, per: '1s', lease: { seconds: 1, share: 10_000 } },
      ],
    })
    const first = await g.acquire({}, req(100, 100))
    expect(first.ok).toBe(true)
    const calls = g.stats().redisCalls
    expect(calls).toBe(2) // one lease per limit
    for (let i = 0; i < 20; i++) {
      const d = await g.acquire({}, req(100, 100))
      expect(d.ok).toBe(true)
      await d.settle({ inputTokens: 100, outputTokens: 50 })
    }
    expect(g.stats().redisCalls).toBe(calls)
    const s = g.stats().lease!
    expect(s.rpm).toMatchObject({ ids: 1, used: 21 })
    // The first decision still holds its 200; each settled one 150 (settled below its estimate).
    expect(s.tpm).toMatchObject({ ids: 1, used: 200 + 20 * 150 })
    await g.close()
  })

  it('all or nothing: an unleased budget refuses, nothing is charged and the lease use is given back', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const p = prefix('aon')
    const g = new Guard({
      store,
      prefix: p,
      limits: [
        { id: 'rpm', scope: 'all', requests: 100, per: '1s', lease: { seconds: 1, share: 20 } },
        { id: 'tpd', scope: 'all', tokens: 1000, per: 'day' },
      ],
    })
    const ok = await g.acquire({}, req(400, 100))
    expect(ok).toMatchObject({ ok: true, remaining: { rpm: 19, tpd: 500 } })
    const refused = await g.acquire({}, req(600, 100))
    expect(refused).toMatchObject({ ok: false, limit: 'tpd' })
    // The refused call took nothing: the lease still has its 19, the budget its 500.
    expect(g.stats().lease!.rpm).toMatchObject({ units: 20, used: 1 })
    expect((await g.peek({})).remaining).toEqual({ rpm: 19, tpd: 500 })
    await ok.cancel()
    expect(g.stats().lease!.rpm).toMatchObject({ units: 20, used: 0 })
    expect((await g.peek({})).remaining).toEqual({ rpm: 20, tpd: 1000 })
    await g.close()
  })

  it('all or nothing: a leased limit refuses, nothing is asked of Redis and the other leases give back', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const g = new Guard({
      store,
      prefix: prefix('aon2'),
      limits: [
        { id: 'rpm', scope: 'all', requests: 100, per: '1s', lease: { seconds: 1, share: 20 } },
        { id: 'tpm', scope: 'all', tokens: 300, per: '1s', lease: { seconds: 1, share: 300 } },
        { id: 'conc', scope: 'all', concurrent: 10 },
      ],
    })
    const d1 = await g.acquire({}, req(100, 100))
    expect(d1.ok).toBe(true)
    const calls = g.stats().redisCalls
    const d2 = await g.acquire({}, req(100, 100))
    expect(d2).toMatchObject({ ok: false, limit: 'tpm' })
    expect(d2.retryAfterMs).toBeGreaterThan(0)
    // The refusal asked Redis once (the token lease's renewal: 100 free, less than the call),
    // the guard script not at all.
    expect(g.stats().redisCalls - calls).toBe(1)
    expect(g.stats().lease!.rpm).toMatchObject({ used: 1 })
    expect((await g.peek({})).remaining).toMatchObject({ conc: 9 })
    await d1.settle({ inputTokens: 50, outputTokens: 10 })
    expect((await g.peek({})).remaining).toMatchObject({ conc: 10 })
    await g.close()
  })

  it('a key pool refusal gives the lease use back too', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const p = prefix('route')
    const quota = new Quota(store, { prefix: `${p}q:`, now: clock.now, rpmWindow: true })
    const keys = [{ id: 'key-a', rpm: 1, tpm: 100_000, rpd: 100 }]
    const g = new Guard({
      store,
      prefix: p,
      routing: { quota, keys },
      limits: [{ id: 'rpm', scope: 'all', requests: 100, per: '1s', lease: { seconds: 1, share: 10 } }],
    })
    const a = await g.acquire({}, req())
    expect(a).toMatchObject({ ok: true, key: { id: 'key-a' } })
    const b = await g.acquire({}, req())
    expect(b).toMatchObject({ ok: false, limit: 'keys' })
    expect(g.stats().lease!.rpm).toMatchObject({ used: 1 })
    await a.settle({ inputTokens: 1, outputTokens: 1 })
    await g.close()
  })

  it('settle adjusts the leased token limit in-process: a refund goes back, an excess is charged', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const p = prefix('settle')
    const limits: GuardLimit[] = [{ id: 'tpm', scope: 'all', tokens: 1000, per: '1s', lease: { seconds: 1, share: 600 } }]
    const g = new Guard({ store, prefix: p, limits })
    const d = await g.acquire({}, req(200, 100))
    expect(g.stats().lease!.tpm).toMatchObject({ units: 600, used: 300 })
    await d.settle({ inputTokens: 100, outputTokens: 20 })
    expect(g.stats().lease!.tpm).toMatchObject({ used: 120 })
    // Above its estimate, within the lease: counted under it, no round trip.
    const calls = g.stats().redisCalls
    const e = await g.acquire({}, req(100, 100))
    await e.settle({ inputTokens: 100, outputTokens: 300 })
    expect(g.stats().lease!.tpm).toMatchObject({ used: 520 })
    expect(g.stats().redisCalls).toBe(calls)
    // Beyond the lease: the excess goes to Redis at once, with the lease.
    const f = await g.acquire({}, req(50, 10))
    await f.settle({ inputTokens: 50, outputTokens: 500 })
    expect(g.stats().lease!.tpm).toMatchObject({ ids: 0 })
    // Everything used counts: 120 + 400 + 550 = 1070 > 1000, so a second holder finds nothing.
    const other = new Guard({ store, prefix: p, limits })
    expect(await other.acquire({}, req(1, 0))).toMatchObject({ ok: false, limit: 'tpm' })
    // One window later it is all free again.
    clock.advance(1_000 + 1_000 + 1_000)
    expect((await other.acquire({}, req(500, 0))).ok).toBe(true)
    await Promise.all([g.close(), other.close()])
  })

  it('many holders with random calls and settles: at most the limit in every window', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const p = prefix('random')
    const max = 2000
    const windowMs = 10_000
    const limits: GuardLimit[] = [{ id: 'tpw', scope: 'all', tokens: max, per: windowMs, lease: { seconds: 0.5 } }, { id: 'rpw', scope: 'all', requests: 40, per: windowMs }]
    const gs = Array.from({ length: 4 }, () => new Guard({ store, prefix: p, limits }))
    let seed = 7
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    const used: [number, number][] = []
    for (let step = 0; step < 400; step++) {
      const g = gs[Math.floor(rand() * gs.length)]
      const estimate = [Math.floor(rand() * 100), Math.floor(rand() * 100)]
      const d = await g.acquire({}, req(estimate[0], estimate[1]))
      if (d.ok) {
        // At most the estimate (the refund goes back to the lease); some cancelled.
        const actual = rand() < 0.1 ? 0 : Math.floor(rand() * (estimate[0] + estimate[1] + 1))
        if (actual === 0) await d.cancel()
        else await d.settle({ inputTokens: actual, outputTokens: 0 })
        used.push([clock.t, actual])
      }
      clock.advance(Math.floor(rand() * 200))
    }
    // The real usage in every window of W never goes past the limit.
    let busiest = 0
    for (const [t] of used) busiest = Math.max(busiest, used.filter(([u]) => u > t - windowMs && u <= t).reduce((s, [, a]) => s + a, 0))
    expect(busiest).toBeLessThanOrEqual(max)
    // And the limit was reached: refunds went back to the leases and were used again.
    expect(busiest).toBeGreaterThan(0.8 * max)
    expect(used.length).toBeGreaterThan(40)
    await Promise.all(gs.map((g) => g.close()))
  })

  it('reset(ctx) clears a leased limit for its scope', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const g = new Guard({ store, prefix: prefix('reset'), limits: [{ id: 'r:pm', scope: (c: any) => c.u, requests: 3, per: '1h', lease: true }, { id: 'tpm', scope: (c: any) => c.u, tokens: 10_000, per: '1h' }] })
    for (let i = 0; i < 3; i++) expect((await g.acquire({ u: 'x' }, req())).ok).toBe(true)
    expect(await g.acquire({ u: 'x' }, req())).toMatchObject({ ok: false, limit: 'r:pm' })
    await g.reset({ u: 'x' })
    expect(await g.acquire({ u: 'x' }, req())).toMatchObject({ ok: true, remaining: { tpm: 9800 } })
    await g.close()
  })

  it('close() gives the unused part back at once', async () => {
    const clock = new Clock(T0)
    const store = redis(clock)
    const p = prefix('close')
    const limits: GuardLimit[] = [{ id: 'rpm', scope: 'all', requests: 10, per: '1s', lease: { seconds: 1 } }]
    const a = new Guard({ store, prefix: p, limits })
    expect((await a.acquire({}, req())).ok).toBe(true)
    expect(a.stats().lease!.rpm.units).toBeGreaterThan(1)
    await a.close()
    const b = new Guard({ store, prefix: p, limits })
    let got = 0
    while ((await b.acquire({}, req())).ok) got++
    expect(got).toBe(9)
    await b.close()
  })
})

describe('leased guard limits on a Redis Cluster', () => {
  it('leased and unleased limits decide together, all or nothing, across nodes', async () => {
    const clock = new Clock(T0)
    const store = new RedisStore({ cluster: clusterUrls(), now: clock.now, commandTimeoutMs: 5_000 })
    stores.push(store)
    const g = new Guard({
      store,
      prefix: prefix('cluster'),
      limits: [
        { id: 'rpm', scope: (c: any) => c.u, requests: 50, per: '1s', lease: { seconds: 1, share: 10 } },
        { id: 'tpd', scope: (c: any) => c.org, tokens: 1000, per: 'day' },
      ],
    })
    const ds: GuardDecision[] = []
    for (const u of ['a', 'b', 'c']) ds.push(await g.acquire({ u, org: 'o' }, req(200, 100)))
    expect(ds.map((d) => d.ok)).toEqual([true, true, true])
    // The budget has 100 left: refused by it, and every user's lease keeps its units.
    expect(await g.acquire({ u: 'a', org: 'o' }, req(200, 100))).toMatchObject({ ok: false, limit: 'tpd' })
    expect(g.stats().lease!.rpm).toMatchObject({ ids: 3, units: 30, used: 3 })
    await ds[0].settle({ inputTokens: 10, outputTokens: 0 })
    expect((await g.peek({ u: 'a', org: 'o' })).remaining).toEqual({ rpm: 9, tpd: 390 })
    await g.close()
  })
})

describe('leased guard limits when Redis goes away', () => {
  it('the lease still answers, never beyond it; then the failure policy', async () => {
    const proxy = await startProxy(Number(new URL(redisUrl()).port))
    try {
      const clock = new Clock(T0)
      const store = redis(clock, proxy.url, { connectTimeoutMs: 200, commandTimeoutMs: 200, storeRetryMs: 50 })
      const p = prefix('outage')
      const limits: GuardLimit[] = [{ id: 'rpm', scope: 'all', requests: 100, per: '1s', lease: { seconds: 1, share: 5 } }]
      const closed = new Guard({ store, prefix: p, limits })
      const open = new Guard({ store, prefix: `${p}o:`, limits, onStoreError: 'fail-open' })
      const local = new Guard({ store, prefix: `${p}l:`, limits: [{ ...limits[0], requests: 7 }], onStoreError: 'local' })
      for (const g of [closed, open, local]) expect((await g.acquire({}, req())).ok).toBe(true)
      proxy.refuse()
      // Four more from each lease, not one beyond.
      for (let i = 0; i < 4; i++) {
        for (const g of [closed, open, local]) {
          const d = await g.acquire({}, req())
          expect(d.ok).toBe(true)
          expect(d.fallback).toBeUndefined()
        }
      }
      const err = await closed.acquire({}, req()).catch((e) => e)
      expect(err.code).toMatch(/^ERR_TOLLGATE_STORE_(UNAVAILABLE|TIMEOUT)$/)
      const d = await open.acquire({}, req())
      expect(d).toMatchObject({ ok: true, fallback: 'fail-open' })
      await d.settle({ inputTokens: 1, outputTokens: 1 })
      // 'local': the twin (7 a window) decides past the lease.
      let viaTwin = 0
      for (let i = 0; i < 10; i++) if ((await local.acquire({}, req())).ok) viaTwin++
      expect(viaTwin).toBe(7)
      proxy.open()
      await new Promise((r) => setTimeout(r, 100))
      // Back: what fail-open admitted is counted in Redis (through the lease script).
      expect(await open.flush()).toBe(true)
      expect(open.stats().replayed).toBe(1)
      await open.close()
      const after = new Guard({ store, prefix: `${p}o:`, limits: [{ ...limits[0], lease: { seconds: 1, share: 100 } }] })
      let got = 0
      while ((await after.acquire({}, req())).ok) got++
      expect(got).toBe(100 - 5 - 1)
      await Promise.all([after.close(), closed.close(), local.close()])
    } finally {
      await proxy.close()
    }
  })

  it('Redis refusing the unleased part: fail-closed rejects and the lease use is given back', async () => {
    const proxy = await startProxy(Number(new URL(redisUrl()).port))
    try {
      const clock = new Clock(T0)
      const store = redis(clock, proxy.url, { connectTimeoutMs: 200, commandTimeoutMs: 200, storeRetryMs: 50 })
      const g = new Guard({ store, prefix: prefix('outage2'), limits: [{ id: 'rpm', scope: 'all', requests: 100, per: '10s', lease: { seconds: 1, share: 5 } }, { id: 'tpm', scope: 'all', tokens: 10_000, per: '10s' }] })
      expect((await g.acquire({}, req())).ok).toBe(true)
      proxy.refuse()
      const err = await g.acquire({}, req()).catch((e) => e)
      expect(err.code).toMatch(/^ERR_TOLLGATE_STORE_(UNAVAILABLE|TIMEOUT)$/)
      expect(g.stats().lease!.rpm).toMatchObject({ units: 5, used: 1 })
      proxy.open()
      await g.close()
    } finally {
      await proxy.close()
    }
  })
})
