// One small suite of tollgate's public API, run unchanged under node:test, jest, vitest threads
// and in a worker thread (see __test__/compat.test.ts). Plain node:assert, so any runner works.
'use strict'
const assert = require('node:assert/strict')
const tollgate = require('../../lib/index.js')

const { MemoryStore, RedisStore, RateLimiter, TokenBudget, ResponseCache, CostTracker, StoreError, countTokens, codes } = tollgate

/** Runs the suite; `redisUrl` may be undefined (memory only). Resolves to what it checked. */
async function run(redisUrl) {
  const checked = []
  // In-process: decisions, already-resolved promises.
  const rl = new RateLimiter(new MemoryStore(), { maxRequests: 2 })
  assert.deepEqual((await rl.consume('a')).allowed, true)
  await rl.consume('a')
  assert.deepEqual(await rl.consume('a'), { allowed: false, remaining: 0, resetInSeconds: 60 })
  checked.push('memory limiter')

  // Errors are Errors of this realm, with codes, sync and async.
  const err = await rl.consume('').catch((e) => e)
  assert.ok(err instanceof TypeError && err instanceof Error, 'a TypeError of this realm')
  assert.equal(err.code, codes.INVALID_ARG)
  assert.throws(() => new TokenBudget({ maxTokens: -1 }), (e) => e instanceof RangeError && e.code === codes.OUT_OF_RANGE)
  checked.push('errors')

  assert.equal(countTokens('hello world', 'gpt-4o'), 2)
  checked.push('tokens')

  if (redisUrl) {
    const store = new RedisStore(redisUrl)
    const prefix = `compat:${process.pid}:${Math.random().toString(36).slice(2)}:`
    const shared = new RateLimiter(store, { maxRequests: 3, prefix })
    const results = await Promise.all(Array.from({ length: 5 }, () => shared.consume('k')))
    assert.equal(results.filter((r) => r.allowed).length, 3)
    const cache = new ResponseCache(store, { prefix })
    await cache.set('gpt-4o', [{ role: 'user', content: 'hi' }], { text: 'hello' })
    assert.deepEqual(await cache.get('gpt-4o', [{ role: 'user', content: 'hi' }]), { text: 'hello' })
    const tracker = new CostTracker(store, { prefix, dailyBudget: 1 })
    assert.equal((await tracker.reserve(2)).allowed, false)
    await store.close()
    const closed = await shared.consume('k').catch((e) => e)
    assert.ok(closed instanceof StoreError && closed instanceof Error, 'a StoreError of this realm')
    assert.equal(closed.code, codes.STORE_CLOSED)
    // An unreachable server: a typed error, quickly, and nothing left open.
    const down = new RateLimiter(new RedisStore('redis://127.0.0.1:1', { connectTimeoutMs: 100 }), { prefix })
    const e2 = await down.consume('k').catch((e) => e)
    assert.ok(e2 instanceof StoreError)
    checked.push('redis')
  }
  return checked
}

module.exports = { run }
