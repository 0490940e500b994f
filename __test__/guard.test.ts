// Guard: one decision over every limit, all or nothing, on every store (MemoryStore, one
// redis-server, a 3-master Cluster), with an injected clock.
import { describe, expect, it } from 'vitest'
import { Clock, forEachStore } from './helpers/stores.js'
import { CostTracker, Guard, MemoryStore, Quota, ResponseCache, codes, definePrice } from '../lib/index.js'

const MINUTE = 60_000
const DAY = 86_400_000
const req = (tokens = 100, maxTokens = 100) => ({ model: 'gpt-4o-mini', tokens, maxTokens })

forEachStore('Guard', ({ kind, store, prefix }) => {
  const make = (clock: Clock, limits: any[], extra: Record<string, unknown> = {}) =>
    new Guard({ store: store(clock), prefix: prefix('guard'), limits, ...extra })

  it('counts requests in a sliding window and frees them as they leave it', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const g = make(clock, [{ id: 'rpm', scope: (c: any) => c.user, requests: 2, per: '1m' }])
    const ctx = { user: 'u1' }
    for (let i = 0; i < 2; i++) {
      const d = await g.acquire(ctx, req())
      expect(d.ok).toBe(true)
      await d.settle({ inputTokens: 10, outputTokens: 10 })
      clock.advance(10_000)
    }
    const refused = await g.acquire(ctx, req())
    expect(refused).toMatchObject({ ok: false, limit: 'rpm', retryAfterMs: 40_000, remaining: { rpm: 0 } })
    // another user has a window of their own
    expect((await g.acquire({ user: 'u2' }, req())).ok).toBe(true)
    clock.advance(40_000)
    expect((await g.acquire(ctx, req())).ok).toBe(true)
  })

  it('charges tokens, input and output tokens, and dollars by the real usage', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const g = make(clock, [
      { id: 'tpm', scope: 'all', tokens: 1_000, per: '1m' },
      { id: 'in', scope: 'all', inputTokens: 1_000, per: '1h' },
      { id: 'out', scope: 'all', outputTokens: 1_000, per: '1d' },
      { id: 'usd', scope: 'all', usd: 1, per: 'month' },
    ])
    const d = await g.acquire({}, req(300, 200))
    // gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output
    expect(d.remaining).toEqual({ tpm: 500, in: 700, out: 800, usd: 1 - (300 * 0.15 + 200 * 0.6) / 1e6 })
    await d.settle({ id: 'x', object: 'chat.completion', model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 40, completion_tokens: 10, total_tokens: 50 } })
    expect((await g.peek({})).remaining).toEqual({ tpm: 950, in: 960, out: 990, usd: 1 - (40 * 0.15 + 10 * 0.6) / 1e6 })
    // usage over the estimate is charged too
    const e = await g.acquire({}, req(10, 10))
    await e.settle({ inputTokens: 900, outputTokens: 80 })
    expect((await g.peek({})).remaining.tpm).toBe(0)
    const refused = await g.acquire({}, req(10, 10))
    expect(refused).toMatchObject({ ok: false, limit: 'tpm' })
    clock.advance(MINUTE)
    expect((await g.acquire({}, req(10, 10))).ok).toBe(true)
  })

  it('resets calendar periods at midnight and at the month, in a time zone when asked', async () => {
    // 2026-03-31 23:30 in New York is 03:30 UTC on April 1st
    const clock = new Clock(Date.UTC(2026, 3, 1, 3, 30))
    const g = make(clock, [
      { id: 'utc-day', scope: 'x', requests: 1, per: 'day' },
      { id: 'ny-month', scope: 'x', requests: 1, per: 'month', timeZone: 'America/New_York' },
    ])
    const used = { inputTokens: 1, outputTokens: 1 }
    // (settled: a hold never settled expires after holdTtlMs and gives its request back)
    await (await g.acquire({}, req())).settle(used)
    const d = await g.acquire({}, req())
    // both refuse (the New York month ends at 04:00 UTC): the wait is the longer one
    expect(d).toMatchObject({ ok: false, limit: 'utc-day', retryAfterMs: DAY - 3.5 * 3_600_000 })
    clock.advance(DAY - 3.5 * 3_600_000)
    // UTC midnight: a new UTC day, and April 1st 20:00 in New York (a new month there)
    const third = await g.acquire({}, req())
    expect(third.ok).toBe(true)
    await third.settle(used)
    clock.advance(DAY)
    const m = await g.acquire({}, req())
    expect(m).toMatchObject({ ok: false, limit: 'ny-month' })
    // The next New York month begins at 04:00 UTC on May 1st (EDT, UTC-4).
    expect(clock.t + m.retryAfterMs!).toBe(Date.UTC(2026, 4, 1, 4, 0))
  })

  it('holds one slot per call in flight; settle, cancel and expiry free it', async () => {
    const clock = new Clock()
    const g = make(clock, [{ id: 'conc', scope: (c: any) => c.model, concurrent: 2 }], { holdTtlMs: 30_000 })
    const a = await g.acquire({ model: 'm' }, req())
    const b = await g.acquire({ model: 'm' }, req())
    const c = await g.acquire({ model: 'm' }, req())
    expect(c).toMatchObject({ ok: false, limit: 'conc', retryAfterMs: 30_000 })
    await a.settle({ inputTokens: 1, outputTokens: 1 })
    const d = await g.acquire({ model: 'm' }, req())
    expect(d.ok).toBe(true)
    await b.cancel()
    expect((await g.peek({ model: 'm' })).remaining.conc).toBe(1)
    clock.advance(30_000) // d was never ended: its hold expires
    expect((await g.peek({ model: 'm' })).remaining.conc).toBe(2)
    // the expired decision can no longer be settled
    await expect(d.settle({ inputTokens: 1, outputTokens: 1 })).resolves.toBeUndefined()
    expect((await g.peek({ model: 'm' })).remaining.conc).toBe(2)
  })

  it('charges nothing anywhere when any one limit refuses', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const limits = [
      { id: 'user-rpm', scope: (c: any) => c.user, requests: 5, per: '1m' },
      { id: 'user-tpd', scope: (c: any) => c.user, tokens: 2_000, per: 'day' },
      { id: 'org-usd', scope: (c: any) => c.org, usd: 0.001, per: 'month' },
      { id: 'provider-tpm', scope: () => 'openai', tokens: 10_000, per: '1m' },
      { id: 'model-conc', scope: (c: any) => c.model, concurrent: 3 },
    ]
    const g = make(clock, limits)
    const ctx = { user: 'u', org: 'o', model: 'gpt-4o-mini' }
    const first = await g.acquire(ctx, req(500, 500))
    expect(first.ok).toBe(true)
    // each request below is refused by exactly one limit
    const cases: [string, any][] = [
      ['user-tpd', req(900, 200)],
      ['org-usd', { model: 'gpt-4o', tokens: 100, maxTokens: 100 }],
    ]
    for (const [limit, r] of cases) {
      const before = (await g.peek(ctx)).remaining
      const d = await g.acquire(ctx, r)
      expect(d).toMatchObject({ ok: false, limit })
      expect((await g.peek(ctx)).remaining).toEqual(before)
    }
    await g.acquire(ctx, req(10, 10))
    await g.acquire(ctx, req(10, 10))
    const before = (await g.peek(ctx)).remaining
    expect(await g.acquire(ctx, req(10, 10))).toMatchObject({ ok: false, limit: 'model-conc' })
    expect((await g.peek(ctx)).remaining).toEqual(before)
    await first.cancel()
    const after = (await g.peek(ctx)).remaining
    expect(after['user-tpd']).toBe(2_000 - 40)
  })

  it('under 300 concurrent acquires never admits over a limit, and leaves no refused charge behind', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const g = make(clock, [
      { id: 'rpm', scope: 'shared', requests: 120, per: '1m' },
      { id: 'tokens', scope: (c: any) => c.org, tokens: 15_000, per: 'day' },
      { id: 'conc', scope: 'model', concurrent: 40 },
    ])
    const ds = await Promise.all(Array.from({ length: 300 }, (_, i) => g.acquire({ org: 'acme' }, req(50 + (i % 3) * 25, 50))))
    const ok = ds.filter((d) => d.ok)
    if (kind === 'cluster') {
      // Meter by meter: a call the concurrency limit refuses holds rpm and tokens until its
      // cancel lands, so others may be refused by those too — never admitted over any limit.
      expect(ok.length).toBeGreaterThan(0)
      expect(ok.length).toBeLessThanOrEqual(40)
    } else {
      // One atomic decision: concurrency binds first (nothing is settled), exactly 40 admitted.
      expect(ok).toHaveLength(40)
      expect(ds.filter((d) => !d.ok).every((d) => d.limit === 'conc')).toBe(true)
    }
    expect((await g.peek({ org: 'acme' })).remaining.conc).toBe(40 - ok.length)
    await Promise.all(ok.map((d) => d.cancel()))
    // everything given back: no refused call left a hold anywhere
    expect((await g.peek({ org: 'acme' })).remaining).toEqual({ rpm: 120, tokens: 15_000, conc: 40 })
  })

  it('skips a limit whose scope is null for this call', async () => {
    const clock = new Clock()
    const g = make(clock, [
      { id: 'free-tier', scope: (c: any) => (c.plan === 'free' ? c.user : null), requests: 1, per: '1h' },
      { id: 'all', scope: 'all', requests: 100, per: '1h' },
    ])
    expect((await g.acquire({ user: 'a', plan: 'free' }, req())).ok).toBe(true)
    expect((await g.acquire({ user: 'a', plan: 'free' }, req())).limit).toBe('free-tier')
    const paid = await g.acquire({ user: 'a', plan: 'pro' }, req())
    expect(paid.ok).toBe(true)
    expect(Object.keys(paid.remaining)).toEqual(['all'])
  })

  it('routes to an API key with Quota and gives the limits back when no key has room', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const s = store(clock)
    const quota = new Quota(s, { prefix: prefix('q'), now: clock.now, rpmWindow: true })
    const keys = [{ id: 'key-a', rpm: 1, tpm: 100_000, rpd: 100 }]
    const g = new Guard({ store: s, prefix: prefix('g'), limits: [{ id: 'user', scope: 'u', requests: 10, per: '1h' }], routing: { quota, keys } })
    const d = await g.acquire({}, req())
    expect(d).toMatchObject({ ok: true, key: { id: 'key-a' } })
    const refused = await g.acquire({}, req())
    expect(refused).toMatchObject({ ok: false, limit: 'keys' })
    expect((await g.peek({})).remaining.user).toBe(9)
    await d.settle({ inputTokens: 5, outputTokens: 5 })
  })

  it('answers from the cache without charging, and caches what settle is given', async () => {
    const clock = new Clock()
    const s = store(clock)
    const cache = new ResponseCache(s, { prefix: prefix('c'), ttl: 60 })
    const tracker = new CostTracker(s, { prefix: prefix('t') })
    const g = new Guard({ store: s, prefix: prefix('g'), limits: [{ id: 'rpm', scope: 'u', requests: 1, per: '1m' }], cache, tracker })
    const messages = [{ role: 'user', content: 'hello' }]
    const response = { id: 'r1', object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ message: { role: 'assistant', content: 'hi' } }], usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 } }
    const d = await g.acquire({}, { model: 'gpt-4o-mini', messages })
    expect(d.ok).toBe(true)
    await d.settle(response)
    const hit = await g.acquire({}, { model: 'gpt-4o-mini', messages })
    expect(hit).toMatchObject({ ok: true, cached: response, remaining: { rpm: 0 } })
    expect((await tracker.totals()).daily.spent).toBeCloseTo((8 * 0.15 + 2 * 0.6) / 1e6, 12)
    expect(g.stats().cached).toBe(1)
  })

  it('run() waits for capacity in arrival order, settles with the result, cancels on a throw', async () => {
    const g = new Guard({ store: store(new Clock(Date.now())) as any, prefix: prefix('run'), limits: [{ id: 'conc', scope: 'x', concurrent: 1 }] })
    if (kind !== 'memory') {
      // The Redis guards read the real clock here: waits are real (and short).
    }
    const order: number[] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const usage = { inputTokens: 1, outputTokens: 1 }
    const first = g.run({}, req(), async () => {
      await gate
      order.push(0)
      return usage
    })
    const waiting = [1, 2].map((i) => g.run({}, req(), async () => (order.push(i), usage), { wait: { maxMs: 5_000 } }))
    await expect(g.run({}, req(), async () => usage)).rejects.toMatchObject({ code: codes.LIMITED, limit: 'conc' })
    release()
    await Promise.all([first, ...waiting])
    expect(order).toEqual([0, 1, 2])
    await expect(g.run({}, req(), async () => Promise.reject(new Error('provider down')))).rejects.toThrow('provider down')
    expect((await g.peek({})).remaining.conc).toBe(1)
  })
})

describe('Guard: bad input is a typed error and changes nothing', () => {
  const limits: any[] = [{ id: 'rpm', scope: (c: any) => c.user, requests: 5, per: '1m' }]
  it('refuses bad policies at construction', () => {
    const bad: [any, string][] = [
      [{ limits: [{ id: 'x', scope: 'a', per: '1m' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', requests: 1, tokens: 2, per: '1m' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', requests: 1 }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', requests: -1, per: '1m' }] }, codes.OUT_OF_RANGE],
      [{ limits: [{ id: 'x', scope: 'a', requests: 1, per: '3 weeks' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', concurrent: 1, per: '1m' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', requests: 1, per: 'day', timeZone: 'Mars/Olympus' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', requests: 1, per: '1m', timeZone: 'UTC' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', requests: 1, per: '1m' }, { id: 'x', scope: 'b', requests: 1, per: '1m' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 42, requests: 1, per: '1m' }] }, codes.INVALID_ARG],
      [{ limits: [{ id: 'x', scope: 'a', request: 1, per: '1m' }] }, codes.UNKNOWN_OPTION],
      [{ limit: [] }, codes.UNKNOWN_OPTION],
      [{}, codes.INVALID_ARG],
    ]
    for (const [o, code] of bad) expect(() => new Guard(o), JSON.stringify(o)).toThrow(expect.objectContaining({ code }))
  })

  it('refuses bad calls with a stable code, and leaves every counter as it was', async () => {
    const clock = new Clock()
    const other = new Guard({ store: new MemoryStore({ now: clock.now }), limits })
    const g = new Guard({
      store: new MemoryStore({ now: clock.now }),
      limits: [
        ...limits,
        { id: 'usd', scope: 'all', usd: 5, per: 'day' },
        { id: 'boom', scope: (c: any) => (c.boom ? (() => { throw new Error('no org') })() : c.org ?? null), requests: 9, per: '1m' },
      ],
    })
    const ctx = { user: 'u' }
    const snapshot = async () => (await g.peek(ctx)).remaining
    const before = await snapshot()
    const cases: [() => Promise<unknown>, string][] = [
      [() => g.acquire(ctx, { model: 'no-such-model', tokens: 1 }), codes.UNKNOWN_MODEL],
      [() => g.acquire({ user: 'u', boom: true }, req()), codes.INVALID_ARG],
      [() => g.acquire({ user: 42 }, req()), codes.INVALID_ARG],
      [() => g.acquire({ user: 'a\u0000b' }, req()), codes.INVALID_ARG],
      [() => g.acquire({ user: 'a\ud800' }, req()), codes.INVALID_ARG],
      [() => g.acquire(ctx, { tokens: 1 } as any), codes.INVALID_ARG],
      [() => g.acquire(ctx, { model: 'gpt-4o-mini', tokens: -1 }), codes.OUT_OF_RANGE],
      [() => g.acquire(ctx, { model: 'gpt-4o-mini', token: 1 } as any), codes.UNKNOWN_OPTION],
    ]
    for (const [call, code] of cases) await expect(call()).rejects.toMatchObject({ code })
    expect(await snapshot()).toEqual(before)

    const d = await g.acquire(ctx, req())
    const held = await snapshot()
    await expect(d.settle({ inputTokens: -5, outputTokens: 1 })).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(d.settle({ inputTokens: NaN, outputTokens: 1 })).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(d.settle({ nothing: true })).rejects.toMatchObject({ code: codes.NO_USAGE })
    await expect(other.settle(d, { inputTokens: 1, outputTokens: 1 })).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(g.settle({ ok: true } as any, { inputTokens: 1, outputTokens: 1 })).rejects.toMatchObject({ code: codes.INVALID_ARG })
    expect(await snapshot()).toEqual(held)
    await d.settle({ inputTokens: 1, outputTokens: 1 })
    await expect(d.settle({ inputTokens: 1, outputTokens: 1 })).rejects.toMatchObject({ code: codes.DECISION_ENDED })
    await expect(d.cancel()).rejects.toMatchObject({ code: codes.DECISION_ENDED })
    const refused = await g.acquire({ user: 'u' }, { model: 'gpt-4o', tokens: 10_000_000, maxTokens: 0 })
    expect(refused).toMatchObject({ ok: false, limit: 'usd', retryAfterMs: null })
    await expect(refused.settle({ inputTokens: 1, outputTokens: 1 })).rejects.toMatchObject({ code: codes.DECISION_ENDED })
  })

  it('prices with the price in force: a price defined later is used from then on', async () => {
    const g = new Guard({ store: new MemoryStore(), limits: [{ id: 'usd', scope: 'all', usd: 1, per: 'day' }] })
    definePrice('guard-test-model', { input: 1, output: 2 })
    const a = await g.acquire({}, { model: 'guard-test-model', tokens: 1_000, maxTokens: 1_000 })
    expect(a.remaining.usd).toBeCloseTo(1 - 0.003, 12)
    await a.cancel()
    definePrice('guard-test-model', { input: 10, output: 20 })
    const b = await g.acquire({}, { model: 'guard-test-model', tokens: 1_000, maxTokens: 1_000 })
    expect(b.remaining.usd).toBeCloseTo(1 - 0.03, 12)
    await b.settle({ inputTokens: 1_000, cachedInputTokens: 0, outputTokens: 0 })
    expect((await g.peek({})).remaining.usd).toBeCloseTo(1 - 0.01, 12)
  })

  it('answers in-process calls with an already-resolved promise', async () => {
    const g = new Guard({ store: new MemoryStore(), limits })
    let seen: any = null
    g.acquire({ user: 'u' }, req()).then((d) => (seen = d))
    await null
    expect(seen?.ok).toBe(true)
  })
})
