import { describe, expect, it } from 'vitest'
import { TokenBudget } from '../lib/index.js'
import { Clock, forEachStore } from './helpers/stores.js'

forEachStore('TokenBudget', (c) => {
  const make = (clock: Clock, opts: { maxTokens: number; periodSeconds?: number; holdTtlSeconds?: number }) =>
    new TokenBudget(c.store(clock), { prefix: c.prefix('tb'), ...opts })

  it('record and check follow tekimax numbers', async () => {
    // tekimax's documented example: maxTokens 100 — record 60, record 40, check, record 5.
    const b = make(new Clock(), { maxTokens: 100, periodSeconds: 86_400 })
    expect(await b.record('openai-prod', 60)).toEqual({ allowed: true, used: 60, remaining: 40, resetInSeconds: 86_400, reserved: 0 })
    expect(await b.record('openai-prod', 40)).toMatchObject({ allowed: true, used: 100, remaining: 0 })
    expect(await b.check('openai-prod')).toMatchObject({ allowed: false, used: 100, remaining: 0 })
    expect(await b.record('openai-prod', 5)).toMatchObject({ allowed: false, used: 105, remaining: 0 })
  })

  it('an unused bucket reports the whole budget and period', async () => {
    const b = make(new Clock(), { maxTokens: 10_000 })
    expect(await b.check(`user:42`)).toEqual({ allowed: true, used: 0, remaining: 10_000, resetInSeconds: 86_400, reserved: 0 })
  })

  it('the period starts at the first write and resets exactly at its end', async () => {
    const clock = new Clock()
    const b = make(clock, { maxTokens: 100, periodSeconds: 60 })
    await b.record('u', 100)
    clock.advance(59_999)
    expect(await b.check('u')).toMatchObject({ allowed: false, used: 100, resetInSeconds: 1 })
    clock.advance(1)
    expect(await b.check('u')).toEqual({ allowed: true, used: 0, remaining: 100, resetInSeconds: 60, reserved: 0 })
    await b.record('u', 7)
    clock.advance(30_000)
    expect(await b.check('u')).toMatchObject({ used: 7, resetInSeconds: 30 })
  })

  it('reservations count against remaining until settled or released', async () => {
    const b = make(new Clock(), { maxTokens: 100 })
    const r1 = await b.reserve('org', 60)
    expect(r1).toMatchObject({ allowed: true, used: 0, reserved: 60, remaining: 40 })
    expect(r1.hold).toMatchObject({ bucket: 'org', tokens: 60 })
    const refused = await b.reserve('org', 41)
    expect(refused).toMatchObject({ allowed: false, reserved: 60, remaining: 40, hold: null })
    const r2 = await b.reserve('org', 40)
    expect(r2.hold).not.toBeNull()
    expect(await b.check('org')).toMatchObject({ allowed: false, remaining: 0, reserved: 100 })
    // The first call really used 25 tokens.
    expect(await b.settle(r1.hold!, 25)).toMatchObject({ allowed: true, used: 25, reserved: 40, remaining: 35 })
    // The second call was never made.
    expect(await b.release(r2.hold!)).toMatchObject({ allowed: true, used: 25, reserved: 0, remaining: 75 })
    // Settling or releasing a hold twice never frees capacity twice.
    expect(await b.release(r2.hold!)).toMatchObject({ used: 25, reserved: 0, remaining: 75 })
  })

  it('concurrent reservations never overspend', async () => {
    const b = make(new Clock(), { maxTokens: 1_000 })
    const results = await Promise.all(Array.from({ length: 200 }, () => b.reserve('shared', 30)))
    const granted = results.filter((r) => r.hold)
    expect(granted).toHaveLength(33) // 33 × 30 = 990 ≤ 1000 < 34 × 30
    expect(await b.check('shared')).toMatchObject({ reserved: 990, remaining: 10 })
    const ids = new Set(granted.map((r) => r.hold!.id))
    expect(ids.size).toBe(33)
  })

  it('holds that are never settled expire and stop counting', async () => {
    const clock = new Clock()
    const b = make(clock, { maxTokens: 100, holdTtlSeconds: 30 })
    const { hold } = await b.reserve('lost', 100)
    expect(hold!.expiresAt).toBe(clock.t + 30_000)
    clock.advance(29_999)
    expect(await b.check('lost')).toMatchObject({ allowed: false, reserved: 100 })
    clock.advance(1)
    expect(await b.check('lost')).toMatchObject({ allowed: true, reserved: 0, remaining: 100 })
    // A late settle still counts what the call used: nothing is lost.
    expect(await b.settle(hold!, 12)).toMatchObject({ used: 12, reserved: 0 })
  })

  it('a hold from an ended period settles into the current one', async () => {
    const clock = new Clock()
    const b = make(clock, { maxTokens: 100, periodSeconds: 10, holdTtlSeconds: 3_600 })
    const { hold } = await b.reserve('p', 50)
    clock.advance(10_000)
    expect(await b.check('p')).toMatchObject({ used: 0, reserved: 0 })
    expect(await b.settle(hold!, 30)).toMatchObject({ used: 30, reserved: 0, resetInSeconds: 10 })
  })

  it('holds carry across processes as plain data', async () => {
    const clock = new Clock()
    const b = make(clock, { maxTokens: 100 })
    const { hold } = await b.reserve('x', 10)
    const copy = JSON.parse(JSON.stringify(hold))
    expect(await b.settle(copy, 4)).toMatchObject({ used: 4, reserved: 0 })
  })

  it('tekimax multi-tier example: user and org budgets side by side', async () => {
    const clock = new Clock()
    const store = c.store(clock)
    const user = new TokenBudget(store, { maxTokens: 10_000, periodSeconds: 86_400, prefix: c.prefix('user') })
    const org = new TokenBudget(store, { maxTokens: 1_000_000, periodSeconds: 2_592_000, prefix: c.prefix('org') })
    await user.record('user:1', 9_999)
    await org.record('org:1', 9_999)
    expect((await user.check('user:1')).allowed).toBe(true)
    await user.record('user:1', 1)
    expect((await user.check('user:1')).allowed).toBe(false)
    expect(await org.check('org:1')).toMatchObject({ allowed: true, remaining: 990_001, resetInSeconds: 2_592_000 })
  })
})

describe('TokenBudget options', () => {
  it('requires maxTokens', () => {
    expect(() => new TokenBudget(undefined, {} as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
  })
})
