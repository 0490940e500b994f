import Redis from 'ioredis'
import { describe, expect, it, vi } from 'vitest'
import { CostTracker, MemoryStore, ModelTiers, MODEL_TIERS, codes, usageFrom } from '../lib/index.js'
import { Clock, forEachStore, redisUrl } from './helpers/stores.js'

const NOV25 = Date.UTC(2026, 10, 25)
const DAY = 86_400_000

forEachStore('CostTracker', (c) => {
  const make = (clock: Clock, opts: Record<string, unknown> = {}) =>
    new CostTracker(c.store(clock), { prefix: c.prefix('cost'), onAlert: () => {}, ...opts })

  it("records the cost patterns article's way and answers isOverBudget as the cost patterns article does", async () => {
    const t = make(new Clock(NOV25 + 3_600_000), { dailyBudget: 1, monthlyBudget: 10 })
    // gpt-4o: 100k input × $2.50/1M + 30k output × $10/1M = $0.25 + $0.30.
    expect(await t.recordUsage('gpt-4o', 100_000, 30_000, { feature: 'chat' })).toBeCloseTo(0.55, 12)
    expect(await t.isOverBudget()).toEqual({ daily: false, monthly: false, dailySpent: 0.55, monthlySpent: 0.55 })
    await t.recordUsage('gpt-4o', 200_000, 0)
    expect(await t.isOverBudget()).toEqual({ daily: true, monthly: false, dailySpent: 1.05, monthlySpent: 1.05 })
  })

  it('records usage objects and provider responses, cached input billed once', async () => {
    const t = make(new Clock(NOV25))
    const completion = {
      object: 'chat.completion',
      usage: { prompt_tokens: 10_000, completion_tokens: 1_000, prompt_tokens_details: { cached_tokens: 8_000 } },
    }
    // gpt-4o: 2k input × 2.50 + 8k cached × 1.25 + 1k output × 10, per 1M = 0.005 + 0.01 + 0.01.
    expect(await t.recordUsage('gpt-4o', completion)).toBeCloseTo(0.025, 12)
    expect(await t.recordUsage('gpt-4o', usageFrom(completion)!, { tags: { user: 'u1' } })).toBeCloseTo(0.025, 12)
    const totals = await t.totals()
    expect(totals.daily.spent).toBe(0.05)
    expect(totals.daily.byTag).toEqual({ user: { u1: 0.025 } })
  })

  it('the day turns over exactly at UTC midnight, the month at the first of the month', async () => {
    const clock = new Clock(Date.UTC(2026, 10, 30, 23, 59, 59, 999))
    const t = make(clock)
    await t.recordCost(3)
    expect((await t.totals()).daily).toMatchObject({ period: '2026-11-30', spent: 3, resetsAt: Date.UTC(2026, 11, 1) })
    clock.advance(1)
    const dec = await t.totals()
    expect(dec.daily).toMatchObject({ period: '2026-12-01', spent: 0, resetsAt: Date.UTC(2026, 11, 2) })
    expect(dec.monthly).toMatchObject({ period: '2026-12', spent: 0, resetsAt: Date.UTC(2027, 0, 1) })
    await t.recordCost(1)
    clock.advance(DAY - 1)
    // Still the 1st: the day's counter holds; a millisecond later it is a new day, same month.
    expect((await t.totals()).daily.spent).toBe(1)
    clock.advance(1)
    const d2 = await t.totals()
    expect([d2.daily.period, d2.daily.spent, d2.monthly.spent]).toEqual(['2026-12-02', 0, 1])
  })

  it('a restarted tracker reads today only: no stale counter from another day is enforced', async () => {
    const clock = new Clock(NOV25)
    const store = c.store(clock)
    const prefix = c.prefix('restart')
    await new CostTracker(store, { prefix, dailyBudget: 5 }).recordCost(5)
    expect(await new CostTracker(store, { prefix, dailyBudget: 5 }).isOverBudget()).toMatchObject({ daily: true })
    clock.advance(DAY)
    const fresh = new CostTracker(store, { prefix, dailyBudget: 5 })
    expect(await fresh.isOverBudget()).toMatchObject({ daily: false, dailySpent: 0, monthlySpent: 5 })
  })

  it('reservations hold against both budgets until settled, released or expired', async () => {
    const clock = new Clock(NOV25)
    const t = make(clock, { dailyBudget: 1, monthlyBudget: 1, holdTtlSeconds: 60 })
    const a = await t.reserve(0.6, { model: 'gpt-4o-mini' })
    expect(a).toMatchObject({ allowed: true, hold: { id: '2026-11-25#1', estimateUsd: 0.6, expiresAt: NOV25 + 60_000, model: 'gpt-4o-mini' } })
    expect(a.daily).toMatchObject({ spent: 0, reserved: 0.6, remaining: 0.4 })
    const refused = await t.reserve(0.41)
    expect(refused).toMatchObject({ allowed: false, hold: null })
    const b = await t.reserve(0.4)
    expect(b.daily.remaining).toBe(0)
    // Settled with the real usage, priced with the hold's model: 1M input × $0.15.
    const s = await t.settle(a.hold!, { inputTokens: 1_000_000, outputTokens: 0 })
    expect(s.cost).toBeCloseTo(0.15, 12)
    expect(s.daily).toMatchObject({ spent: 0.15, reserved: 0.4 })
    expect((await t.release(b.hold!)).daily).toMatchObject({ reserved: 0, remaining: 0.85 })
    // The monthly budget refuses too once the days add up.
    clock.advance(DAY)
    expect((await t.reserve(0.86)).allowed).toBe(false)
    const c2 = await t.reserve(0.85)
    expect(c2.allowed).toBe(true)
    clock.advance(59_999)
    expect((await t.reserve(0.01)).allowed).toBe(false)
    clock.advance(1)
    expect((await t.totals()).monthly).toMatchObject({ spent: 0.15, reserved: 0 })
  })

  it('settle takes USD, a model override, and counts a call that ran past midnight in the new day', async () => {
    const clock = new Clock(NOV25 + DAY - 1_000)
    const t = make(clock, { dailyBudget: 10 })
    const { hold } = await t.reserve(2, { tags: { feature: 'search' } })
    clock.advance(2_000)
    const s = await t.settle(hold!, 1.25)
    expect(s.daily).toMatchObject({ period: '2026-11-26', spent: 1.25, reserved: 0 })
    expect(s.monthly).toMatchObject({ spent: 1.25, reserved: 0 })
    expect((await t.totals()).daily.byTag).toEqual({ feature: { search: 1.25 } })
    const h2 = (await t.reserve(1)).hold!
    expect((await t.settle(h2, { inputTokens: 1_000_000 }, { model: 'gpt-4o' })).cost).toBe(2.5)
    const h3 = (await t.reserve(1)).hold!
    await expect(t.settle(h3, { inputTokens: 1 })).rejects.toMatchObject({ name: 'TypeError', code: codes.INVALID_ARG })
  })

  it('each alert threshold fires once per period, with the cost patterns article message', async () => {
    const clock = new Clock(NOV25)
    const alerts: [string, any][] = []
    const t = make(clock, { dailyBudget: 10, monthlyBudget: 100, alertThresholds: [0.8, 0.5], onAlert: (m: string, a: any) => alerts.push([m, a]) })
    expect(t.alertThresholds).toEqual([0.5, 0.8])
    await t.recordCost(5) // 50 % is not above 50 %
    expect(alerts).toEqual([])
    await t.recordCost(0.01)
    expect(alerts).toEqual([['Daily spend at $5.01 of $10.00 budget', { period: 'daily', label: '2026-11-25', threshold: 0.5, spent: 5.01, budget: 10 }]])
    for (let i = 0; i < 5; i++) await t.recordCost(0.1)
    expect(alerts).toHaveLength(1)
    await t.recordCost(3)
    expect(alerts.map(([, a]) => [a.period, a.threshold])).toEqual([
      ['daily', 0.5],
      ['daily', 0.8],
    ])
    clock.advance(DAY)
    await t.recordCost(42)
    expect(alerts.slice(2).map(([m, a]) => [m, a.period, a.threshold])).toEqual([
      ['Daily spend at $42.00 of $10.00 budget', 'daily', 0.5],
      ['Daily spend at $42.00 of $10.00 budget', 'daily', 0.8],
      ['Monthly spend at $50.51 of $100.00 budget', 'monthly', 0.5],
    ])
  })

  it('a throwing onAlert does not lose the spend or reject', async () => {
    const warn = vi.fn()
    process.on('warning', warn)
    try {
      const t = make(new Clock(NOV25), {
        dailyBudget: 1,
        onAlert: () => {
          throw new Error('pager down')
        },
      })
      expect(await t.recordCost(0.9)).toMatchObject({ daily: { spent: 0.9 } })
      await new Promise((r) => setImmediate(r))
      expect(warn).toHaveBeenCalledWith(expect.objectContaining({ code: 'TOLLGATE_ALERT_FAILED' }))
    } finally {
      process.off('warning', warn)
    }
  })

  it('amounts add exactly in nano-dollars', async () => {
    const t = make(new Clock(NOV25), { dailyBudget: null, monthlyBudget: null })
    for (let i = 0; i < 10; i++) await t.recordCost(0.1)
    const totals = await t.totals()
    expect(totals.daily).toMatchObject({ spent: 1, budget: null, remaining: null })
    // Without budgets nothing is refused.
    expect((await t.reserve(9_000_000)).allowed).toBe(true)
  })

  it('per-tag totals by day and month', async () => {
    const clock = new Clock(NOV25)
    const t = make(clock)
    await t.recordCost(1, { tags: { feature: 'chat', org: 'acme' } })
    await t.recordCost(2, { tags: { feature: 'search', org: 'acme' } })
    clock.advance(DAY)
    await t.recordCost(4, { tags: { feature: 'chat' } })
    const totals = await t.totals()
    expect(totals.daily.byTag).toEqual({ feature: { chat: 4 } })
    expect(totals.monthly.byTag).toEqual({ feature: { chat: 5, search: 2 }, org: { acme: 3 } })
  })

  it('bad input is refused with coded errors', async () => {
    const t = make(new Clock(NOV25))
    expect(() => make(new Clock(), { dailyBudget: -1 })).toThrow(expect.objectContaining({ name: 'RangeError', code: codes.OUT_OF_RANGE }))
    expect(() => make(new Clock(), { alertThresholds: [0] })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => make(new Clock(), { alertThresholds: 0.8 })).toThrow(expect.objectContaining({ name: 'TypeError' }))
    expect(() => make(new Clock(), { alertThreshold: 0.8, alertThresholds: [0.9] })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => make(new Clock(), { onAlert: 'yes' })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    await expect(t.recordUsage('no-such-model', 1, 1)).rejects.toMatchObject({ name: 'RangeError', code: codes.UNKNOWN_MODEL })
    await expect(t.recordUsage('gpt-4o', { nothing: true } as any)).rejects.toMatchObject({ name: 'TypeError', code: codes.NO_USAGE })
    await expect(t.recordCost(1, { tags: { 'a=b': 'c' } })).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(t.recordCost(1, { tags: { a: {} as any } })).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(t.recordCost(Number.NaN)).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(t.reserve(-1)).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(t.settle({ id: 'x' } as any, 1)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(t.release(null as any)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    expect((await t.totals()).daily.spent).toBe(0)
  })

  it('keeps spend per day and per hour, by model and by tag, readable by a new tracker (a restart)', async () => {
    const clock = new Clock(NOV25 - DAY + 22 * 3_600_000 + 5)
    const prefix = c.prefix('history')
    const store = c.store(clock)
    const t = new CostTracker(store, { prefix, onAlert: () => {} })
    // gpt-4o: 100k input × $2.50/1M = $0.25; gpt-4o-mini: 1M output × $0.60/1M = $0.60.
    await t.recordUsage('gpt-4o', 100_000, 0, { feature: 'chat' })
    clock.advance(3 * 3_600_000) // 2026-11-25T01
    await t.recordUsage('gpt-4o-mini', { inputTokens: 0, outputTokens: 1_000_000 }, { tags: { feature: 'search' } })
    const { hold } = await t.reserve(1, { model: 'gpt-4o' })
    await t.settle(hold!, 0.5)
    await t.recordCost(0.05)
    // Another tracker: on Redis over another connection, as a restarted process would be.
    const restarted = new CostTracker(c.kind === 'memory' ? store : c.store(clock), { prefix, onAlert: () => {} })
    const h = await restarted.history({ days: 3, hours: 4 })
    expect(h.days).toEqual([
      { date: '2026-11-23', start: NOV25 - 2 * DAY, spent: 0, byModel: {}, byTag: {} },
      { date: '2026-11-24', start: NOV25 - DAY, spent: 0.25, byModel: { 'gpt-4o': 0.25 }, byTag: { feature: { chat: 0.25 } } },
      { date: '2026-11-25', start: NOV25, spent: 1.15, byModel: { 'gpt-4o': 0.5, 'gpt-4o-mini': 0.6 }, byTag: { feature: { search: 0.6 } } },
    ])
    expect(h.hours.map((x) => [x.hour, x.spent, x.byModel])).toEqual([
      ['2026-11-24T22', 0.25, { 'gpt-4o': 0.25 }],
      ['2026-11-24T23', 0, {}],
      ['2026-11-25T00', 0, {}],
      ['2026-11-25T01', 1.15, { 'gpt-4o': 0.5, 'gpt-4o-mini': 0.6 }],
    ])
    expect(h.days.at(-1)!.spent).toBe((await t.totals()).daily.spent)
    // Defaults: a week and a day's hours.
    const d = await t.history()
    expect([d.days.length, d.hours.length]).toEqual([7, 24])
    clock.advance(49 * 3_600_000)
    expect((await t.history({ days: 4, hours: 0 })).days.map((x) => x.spent)).toEqual([0.25, 1.15, 0, 0])
  })

  it('history refuses bad options', async () => {
    const t = make(new Clock(NOV25))
    await expect(t.history({ days: 401 })).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(t.history({ hours: 49 })).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(t.history({ days: 1.5 })).rejects.toThrow(RangeError)
    await expect(t.history({ weeks: 1 } as never)).rejects.toMatchObject({ code: codes.UNKNOWN_OPTION })
    expect(() => make(new Clock(NOV25), { historyDays: 0 })).toThrow(RangeError)
  })

  if (c.kind === 'redis') {
    it('keeps one hash tag per tracker, each day historyDays after it ends, the month a day, the hour 48 h', async () => {
      const prefix = c.prefix('keys')
      const t = new CostTracker(c.store(new Clock(NOV25 + DAY - 10_000)), { prefix, historyDays: 3 })
      await t.recordCost(1, { tags: { feature: 'chat' } })
      const admin = new Redis(redisUrl())
      try {
        const keys = (await admin.keys(`{${prefix}}*`)).sort()
        expect(keys).toEqual([`{${prefix}}day:2026-11-25`, `{${prefix}}day:2026-11-25:tags`, `{${prefix}}hour:2026-11-25T23`, `{${prefix}}month:2026-11`, `{${prefix}}month:2026-11:tags`])
        const dayTtl = await admin.pttl(`{${prefix}}day:2026-11-25`)
        expect(dayTtl).toBeGreaterThan(3 * DAY + 9_000)
        expect(dayTtl).toBeLessThanOrEqual(3 * DAY + 10_000)
        expect(await admin.pttl(`{${prefix}}day:2026-11-25:tags`)).toBeLessThanOrEqual(3 * DAY + 10_000)
        const hourTtl = await admin.pttl(`{${prefix}}hour:2026-11-25T23`)
        expect(hourTtl).toBeGreaterThan(48 * 3_600_000 + 9_000)
        expect(hourTtl).toBeLessThanOrEqual(48 * 3_600_000 + 10_000)
        expect(await admin.pttl(`{${prefix}}month:2026-11`)).toBeGreaterThan(6 * DAY)
        expect(await admin.hget(`{${prefix}}day:2026-11-25:tags`, 'feature=chat')).toBe('1000000000')
      } finally {
        admin.disconnect()
      }
    })
  }
})

describe('CostTracker on the default store', () => {
  it('needs no store and answers in-process', async () => {
    const t = new CostTracker({ prefix: `default:${Math.random()}:`, dailyBudget: 2 })
    expect(t.dailyBudget).toBe(2)
    expect(t.monthlyBudget).toBe(1000)
    expect(t.alertThresholds).toEqual([0.8])
    expect((await t.reserve(2)).allowed).toBe(true)
    expect((await t.reserve(0.01)).allowed).toBe(false)
  })

  it('a wrong-kind key under the prefix is a store error, and nothing is lost', async () => {
    const store = new MemoryStore()
    const t = new CostTracker(store, { prefix: 'p:' })
    await t.recordCost(1)
    const { TokenBudget } = await import('../lib/index.js')
    const clash = new TokenBudget(store, { maxTokens: 10, prefix: '{p:}day:' })
    await expect(clash.record(new Date().toISOString().slice(0, 10), 1)).rejects.toMatchObject({ code: codes.STORE_ERROR })
    expect((await t.totals()).daily.spent).toBe(1)
  })
})

describe('ModelTiers', () => {
  it("selects like the cost patterns article's selectModel", async () => {
    const tiers = new ModelTiers()
    expect(tiers.tiers).toEqual(['simple', 'standard', 'complex'])
    expect(await tiers.selectModel('simple', { inputTokens: 25 })).toEqual({ ...MODEL_TIERS.simple, tier: 'simple', requestedTier: 'simple', reason: 'requested', budgetUsed: null })
    expect(await tiers.selectModel('standard', { inputTokens: 49 })).toMatchObject({ model: 'gpt-4.1-nano', tier: 'simple', reason: 'short-input' })
    expect(await tiers.selectModel('standard', { inputTokens: 50 })).toMatchObject({ model: 'gpt-4o-mini', tier: 'standard' })
    expect(await tiers.selectModel('complex', { inputTokens: 3 })).toMatchObject({ model: 'gpt-4o', tier: 'complex' })
    expect(await tiers.selectModel('translation')).toMatchObject({ tier: 'standard', requestedTier: 'standard', maxTokens: 1000 })
  })

  it('downgrades as the daily budget runs out: above 90 % no complex, above 95 % the cheapest', async () => {
    const tracker = new CostTracker(new MemoryStore({ now: () => NOV25 }), { dailyBudget: 100, monthlyBudget: null, onAlert: () => {} })
    const tiers = new ModelTiers({ tracker })
    await tracker.recordCost(90)
    expect(await tiers.selectModel('complex')).toMatchObject({ tier: 'complex', budgetUsed: 0.9 })
    const { hold } = await tracker.reserve(0.5) // in-flight calls count
    expect(await tiers.selectModel('complex')).toMatchObject({ tier: 'standard', requestedTier: 'complex', reason: 'budget', budgetUsed: 0.905 })
    expect(await tiers.selectModel('standard')).toMatchObject({ tier: 'standard', reason: 'requested' })
    await tracker.settle(hold!, 5)
    expect(await tiers.selectModel('complex')).toMatchObject({ tier: 'standard', reason: 'budget' })
    await tracker.recordCost(0.01)
    expect(await tiers.selectModel('complex')).toMatchObject({ tier: 'simple', model: 'gpt-4.1-nano', reason: 'budget' })
    expect(await tiers.selectModel('standard')).toMatchObject({ tier: 'simple', reason: 'budget' })
  })

  it('takes custom tiers and downgrade steps, and the tighter of the daily and monthly budgets', async () => {
    const tracker = new CostTracker(new MemoryStore({ now: () => NOV25 }), { dailyBudget: 100, monthlyBudget: 10, onAlert: () => {} })
    const tiers = new ModelTiers({
      tracker,
      tiers: { haiku: { model: 'claude-3-5-haiku' }, sonnet: { model: 'claude-sonnet-4' }, opus: { model: 'claude-opus-4' } },
      defaultTier: 'sonnet',
      shortInputTokens: 0,
      downgrades: [{ above: 0.5, maxTier: 'sonnet' }],
    })
    expect(await tiers.selectModel('opus', { inputTokens: 1 })).toMatchObject({ model: 'claude-opus-4', reason: 'requested' })
    await tracker.recordCost(6)
    expect(await tiers.selectModel('opus')).toMatchObject({ model: 'claude-sonnet-4', reason: 'budget', budgetUsed: 0.6 })
    await tracker.recordCost(4)
    expect(await tiers.selectModel('opus')).toMatchObject({ model: 'claude-sonnet-4' })
  })

  it('refuses bad configuration and input', async () => {
    expect(() => new ModelTiers({ tiers: {} })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new ModelTiers({ tiers: { a: { model: '' } } })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => new ModelTiers({ defaultTier: 'huge' })).toThrow(expect.objectContaining({ name: 'RangeError' }))
    expect(() => new ModelTiers({ downgrades: [{ above: 0.9, maxTier: 'tiny' }] })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => new ModelTiers({ tracker: {} as any })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    await expect(new ModelTiers().selectModel('')).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(new ModelTiers().selectModel('simple', { inputTokens: -1 })).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
  })
})
