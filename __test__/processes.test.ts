// Real processes sharing one Redis: limits hold across them, and each exits by itself.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { RateLimiter, TokenBudget } from '../lib/index.js'
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
