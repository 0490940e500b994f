// Real processes sharing one Redis: limits hold across them, and each exits by itself.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { CostTracker, Quota, RateLimiter, TokenBudget } from '../lib/index.js'
import { redisUrl } from './helpers/stores.js'

const run = promisify(execFile)
const worker = path.join(__dirname, 'helpers', 'worker.cjs')

async function inProcess(...args: string[]): Promise<any> {
  const { stdout } = await run(process.execPath, [worker, ...args], { timeout: 15_000 })
  return JSON.parse(stdout)
}

describe('several processes on one Redis', () => {
  it('a second process sees the limits the first one used', async () => {
    const prefix = `t:proc:${Date.now()}:`
    const rl = new RateLimiter(redisUrl(), { maxRequests: 10, windowSeconds: 60, prefix })
    for (let i = 0; i < 7; i++) await rl.consume('shared')
    expect(await inProcess('check', redisUrl(), prefix, '10')).toEqual({ allowed: true, remaining: 3, resetInSeconds: 60 })
  })

  it('6 processes × 200 concurrent consumes admit exactly maxRequests', async () => {
    const prefix = `t:burst:${Date.now()}:`
    const outs = await Promise.all(Array.from({ length: 6 }, () => inProcess('consume', redisUrl(), prefix, '150', '200')))
    const admitted = outs.reduce((sum, o) => sum + o.admitted, 0)
    expect(admitted).toBe(150)
    const rl = new RateLimiter(redisUrl(), { maxRequests: 150, windowSeconds: 60, prefix })
    expect((await rl.check('shared')).remaining).toBe(0)
  })

  it('6 processes × 100 concurrent reservations never overspend a budget', async () => {
    const prefix = `t:budget:${Date.now()}:`
    const outs = await Promise.all(Array.from({ length: 6 }, () => inProcess('reserve', redisUrl(), prefix, '1000', '100')))
    const granted = outs.reduce((sum, o) => sum + o.admitted, 0)
    expect(granted).toBe(Math.floor(1000 / 7))
    const b = new TokenBudget(redisUrl(), { maxTokens: 1000, prefix })
    expect(await b.check('shared')).toMatchObject({ reserved: 142 * 7, remaining: 1000 - 142 * 7 })
  })
})

describe('CostTracker: processes sharing one Redis ledger', () => {
  it('6 processes × 60 concurrent reservations never exceed the daily budget, and holds settle anywhere', async () => {
    const prefix = `t:spend:${Date.now()}:`
    const outs: any[][] = await Promise.all(Array.from({ length: 6 }, () => inProcess('spend-reserve', redisUrl(), prefix, '10', '60')))
    const holds = outs.flat()
    // $10 / $0.07 = 142.86: exactly 142 holds, counted in integer nano-dollars.
    expect(holds).toHaveLength(142)
    expect(new Set(holds.map((h) => h.id)).size).toBe(142)
    const t = new CostTracker(redisUrl(), { dailyBudget: 10, monthlyBudget: null, prefix })
    expect((await t.totals({ tags: false })).daily).toMatchObject({ spent: 0, reserved: 9.94 })
    // Holds made in other processes settle here, priced with the model they were reserved for.
    for (const h of holds.slice(0, 100)) await t.settle(h, { inputTokens: 100_000, outputTokens: 0 })
    for (const h of holds.slice(100)) await t.release(h)
    // 100 × 100k gpt-4o-mini input tokens at $0.15 / 1M = $1.50.
    const { daily } = await t.totals({ tags: false })
    expect(daily.spent).toBeCloseTo(1.5, 9)
    expect(daily.reserved).toBe(0)
  })

  it('an alert threshold fires once per period across all processes', async () => {
    const prefix = `t:alerts:${Date.now()}:`
    const outs: number[][] = await Promise.all(Array.from({ length: 4 }, () => inProcess('spend-record', redisUrl(), prefix, '10', '250')))
    // 1,000 × $0.01 = $10 against $10: above 10 % and 50 % and 90 %, each fired by exactly one process.
    expect(outs.flat().sort()).toEqual([0.1, 0.5, 0.9])
    const t = new CostTracker(redisUrl(), { dailyBudget: 10, monthlyBudget: null, prefix })
    const totals = await t.totals()
    expect(totals.daily.spent).toBe(10)
    expect(totals.daily.byTag).toEqual({ feature: { batch: 10 } })
    expect(await t.isOverBudget()).toMatchObject({ daily: true, dailySpent: 10 })
  })
})

describe('Quota: 8 processes reserving on one Redis scope', () => {
  /** 8 processes reserve at once; then half the holds are committed and half rolled back. */
  async function run(limit: string, calls: number, keys: object[]) {
    const prefix = `t:quota-procs:${Date.now()}:${Math.random().toString(36).slice(2, 8)}:`
    const outs: any[][] = await Promise.all(Array.from({ length: 8 }, () => inProcess('quota', redisUrl(), prefix, limit, String(calls))))
    const holds = outs.flat()
    const granted = (k: string) => holds.filter((h) => h.key === k).length
    const quota: any = new Quota({ store: redisUrl(), prefix, bufferMs: 0 })
    const rolledBack = { a: 0, b: 0 } as Record<string, number>
    const done = await Promise.all(holds.map((h, i) => (i % 2 ? quota.rollback(h) : quota.commit(h, { tokens: h.tokens }))))
    expect(done.every(Boolean)).toBe(true)
    holds.forEach((h, i) => i % 2 && rolledBack[h.key]++)
    const after = await quota.check('shared', keys, 1)
    return { granted, rolledBack, after }
  }

  it("never exceeds any key's RPD, and rollbacks give requests back exactly", async () => {
    const keys = [
      { id: 'a', rpm: 60_000, tpm: 1e9, rpd: 20 },
      { id: 'b', rpm: 60_000, tpm: 1e9, rpd: 30 },
    ]
    // 160 callers for 50 requests a day.
    const { granted, rolledBack, after } = await run('20,1000000000,1', 20, keys)
    expect([granted('a'), granted('b')]).toEqual([20, 30])
    expect(after.checks.map((c: any) => c.dailyUsed)).toEqual([20 - rolledBack.a, 30 - rolledBack.b])
  })

  it("never exceeds any key's TPM in the window, and rollbacks give tokens back exactly", async () => {
    const keys = [
      { id: 'a', rpm: 60_000, tpm: 1_000, rpd: 1_000_000 },
      { id: 'b', rpm: 60_000, tpm: 1_000, rpd: 1_000_010 },
    ]
    // tpm 1000 at 100 tokens a request: 10 per key inside the minute, whatever the callers.
    const { granted, rolledBack, after } = await run('1000000,1000,100', 10, keys)
    expect([granted('a'), granted('b')]).toEqual([10, 10])
    expect(after.checks.map((c: any) => c.tokenUsed)).toEqual([(10 - rolledBack.a) * 100, (10 - rolledBack.b) * 100])
  })
})

describe('process exit', () => {
  const script = (store: string) => `
    const t = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))})
    const store = ${store}
    const rl = new t.RateLimiter(store, { maxRequests: 5 })
    const c = new t.ResponseCache(store)
    Promise.all([rl.consume('x'), c.set('m', [], 1), c.get('m', [])]).then(([r]) => console.log(JSON.stringify(r)))
  `
  it.each([
    ['memory', 'new t.MemoryStore()'],
    ['redis, never closed', `new t.RedisStore(${JSON.stringify(redisUrl())})`],
    ['redis URL string', JSON.stringify(redisUrl())],
  ])('a process using a %s store exits by itself', async (_name, store) => {
    const t0 = Date.now()
    const { stdout } = await run(process.execPath, ['-e', script(store)], { timeout: 10_000 })
    expect(JSON.parse(stdout)).toMatchObject({ allowed: true })
    expect(Date.now() - t0).toBeLessThan(5_000)
  })

  it('a process whose Redis is unreachable exits by itself after the calls fail', async () => {
    const code = `
      const t = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))})
      const rl = new t.RateLimiter(new t.RedisStore('redis://127.0.0.1:1', { connectTimeoutMs: 100 }))
      rl.consume('x').catch((e) => console.log(e.code))
    `
    const { stdout } = await run(process.execPath, ['-e', code], { timeout: 10_000 })
    expect(stdout.trim()).toBe('ERR_TOLLGATE_STORE_UNAVAILABLE')
  })
})

describe('Guard: processes sharing one Redis policy', () => {
  it('6 processes × 20 callers: no limit exceeded, concurrency never above its cap, totals exact', async () => {
    const prefix = `t:guard:${Date.now()}:`
    const guardWorker = path.join(__dirname, 'helpers', 'guard-worker.cjs')
    const outs = await Promise.all(
      Array.from({ length: 6 }, async () => JSON.parse((await run(process.execPath, [guardWorker, redisUrl(), prefix, '20'], { timeout: 60_000 })).stdout)),
    )
    const admitted = outs.reduce((sum, o) => sum + o.admitted, 0)
    // Tokens bind first: 200 estimated per call in flight, 130 charged once settled, 15,000 a
    // day — so at least (15,000 − 8 × 200) / 130 calls, never more than 15,000 / 130.
    expect(admitted).toBeGreaterThanOrEqual(Math.floor((15_000 - 8 * 200) / 130))
    expect(admitted).toBeLessThanOrEqual(Math.floor(15_000 / 130))
    expect(outs.every((o) => Object.keys(o.stops).every((k) => k === 'user-tpd'))).toBe(true)
    // In flight across all processes: never more than 8 at any instant.
    const events = outs.flatMap((o) => o.intervals.flatMap(([s, e]: [number, number]) => [[s, 1], [e, -1]]))
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    let inFlight = 0
    let most = 0
    for (const [, d] of events) most = Math.max(most, (inFlight += d))
    expect(most).toBeLessThanOrEqual(8)
    expect(most).toBeGreaterThan(1)
    // Every settle landed exactly once: the counters are the sums of the real usage.
    const { Guard } = await import('../lib/index.js')
    const { LIMITS } = (await import('./helpers/guard-limits.cjs' as string)) as { LIMITS: any[] }
    const g = new Guard({ store: redisUrl(), prefix, limits: LIMITS })
    const { remaining } = await g.peek({ user: 'shared', org: 'acme', model: 'gpt-4o-mini' })
    expect(remaining).toEqual({
      'user-rph': 400 - admitted,
      'user-tpd': 15_000 - 130 * admitted,
      'org-usd': (1e9 - 42_000 * admitted) / 1e9,
      'provider-tpm': 1_000_000 - 80 * admitted,
      conc: 8,
    })
  }, 90_000)
})
