// Load: 8 real processes × 2,000 concurrent decisions against one Redis-backed limit of N admit
// exactly N, for every class that admits or reserves.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { CostTracker, Quota, RateLimiter, TokenBudget } from '../lib/index.js'
import { redisUrl } from './helpers/stores.js'

const run = promisify(execFile)
const worker = path.join(__dirname, 'helpers', 'worker.cjs')
const jobsWorker = path.join(__dirname, 'helpers', 'jobs-worker.cjs')
const PROCESSES = 8
const CALLS = 2_000

async function all(kind: string, prefix: string, limit: string): Promise<any[]> {
  return Promise.all(
    Array.from({ length: PROCESSES }, async () => {
      const { stdout } = await run(process.execPath, [worker, kind, redisUrl(), prefix, limit, String(CALLS)], { timeout: 60_000 })
      return JSON.parse(stdout)
    }),
  )
}

const sum = (outs: { admitted: number }[]) => outs.reduce((n, o) => n + o.admitted, 0)

describe(`load: ${PROCESSES} processes × ${CALLS} decisions on one Redis`, () => {
  it('RateLimiter.consume admits exactly N', async () => {
    const prefix = `t:load:rl:${Date.now()}:`
    expect(sum(await all('consume', prefix, '5000'))).toBe(5_000)
    const rl = new RateLimiter(redisUrl(), { maxRequests: 5_000, prefix })
    expect(await rl.check('shared')).toMatchObject({ allowed: false, remaining: 0 })
  })

  it('TokenBudget.reserve grants exactly floor(max / estimate)', async () => {
    const prefix = `t:load:tb:${Date.now()}:`
    expect(sum(await all('reserve', prefix, '70000'))).toBe(10_000)
    const b = new TokenBudget(redisUrl(), { maxTokens: 70_000, prefix })
    expect(await b.check('shared')).toMatchObject({ reserved: 70_000, remaining: 0 })
  })

  it('Quota.reserve admits exactly the keys\' daily cap, and counts every admission once', async () => {
    const prefix = `t:load:q:${Date.now()}:`
    const admitted = sum(await all('quota-load', prefix, '100'))
    // 2 keys × 100 a day. RPM spacing admits one request per key per millisecond of the callers'
    // clocks, and the 16,000 decisions (four callers per process, one after another) take far
    // longer than the 100 ms the 200 admissions need: exactly the day's 200 get through.
    expect(admitted).toBe(200)
    const quota = new Quota({ store: redisUrl(), prefix, bufferMs: 0 })
    const keys = Array.from({ length: 2 }, (_, i) => ({ id: `k${i}`, rpm: 60_000, tpm: 1e12, rpd: 100 }))
    const used = (await quota.check('shared', keys, 3)).checks.map((c: any) => c.dailyUsed)
    for (const u of used) expect(u).toBeLessThanOrEqual(100)
    expect(used.reduce((a: number, b: number) => a + b, 0)).toBe(admitted)
  }, 60_000)

  it('the job limiter admits exactly the global RPM across 8 instances', async () => {
    const prefix = `t:load:jobs:${Date.now()}:`
    // Every instance's clock reads 20 s into a minute when the run starts, so the whole burst
    // falls in one minute window (the windows are aligned to the minute).
    const offset = String(20_000 - (Date.now() % 60_000))
    const outs = await Promise.all(
      Array.from({ length: PROCESSES }, async () => {
        const { stdout } = await run(process.execPath, [jobsWorker, 'burst', redisUrl(), prefix, '1000000000', '5000', String(CALLS), '1', '0', offset], { timeout: 60_000 })
        return JSON.parse(stdout) as { admitted: number[] }
      }),
    )
    const starts = outs.flatMap((o) => o.admitted)
    // 16,000 jobs queued in one minute window, each waiting 0 ms: exactly 5,000 run.
    expect(new Set(starts.map((t) => Math.floor(t / 60_000))).size).toBe(1)
    expect(starts).toHaveLength(5_000)
  })

  it('CostTracker.reserve never exceeds the daily budget', async () => {
    const prefix = `t:load:cost:${Date.now()}:`
    const holds = (await all('spend-reserve', prefix, '500')).flat()
    // $500 / $0.07 = 7142.86
    expect(holds).toHaveLength(7_142)
    const t = new CostTracker(redisUrl(), { dailyBudget: 500, monthlyBudget: null, prefix })
    expect((await t.totals({ tags: false })).daily.reserved).toBeCloseTo(499.94, 9)
  })
})
