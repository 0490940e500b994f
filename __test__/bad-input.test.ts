// Every public function validates its arguments: a TypeError or RangeError with a stable
// code, thrown by constructors and rejected by methods (never thrown synchronously by them).
import { describe, expect, it } from 'vitest'
import { MemoryStore, RateLimiter, RedisStore, ResponseCache, SessionStore, TokenBudget, codes, requestKey } from '../lib/index.js'
import { Clock } from './helpers/stores.js'

const INVALID = { name: 'TypeError', code: codes.INVALID_ARG }
const RANGE = { name: 'RangeError', code: codes.OUT_OF_RANGE }

const badIds: Array<[unknown, object]> = [
  [undefined, INVALID],
  [null, INVALID],
  ['', INVALID],
  [42, INVALID],
  [{}, INVALID],
  [['a'], INVALID],
  [Symbol('s'), INVALID],
  ['x'.repeat(1025), RANGE],
]
const badCounts: Array<[unknown, object]> = [
  [NaN, RANGE],
  [Infinity, RANGE],
  [-1, RANGE],
  [1.5, RANGE],
  [2 ** 60, RANGE],
  ['5', INVALID],
  [null, INVALID],
  [undefined, INVALID],
]

/** Calls `f`; it must not throw synchronously, and its promise must reject like `expected`. */
async function rejects(f: () => Promise<unknown>, expected: object) {
  let p: Promise<unknown>
  try {
    p = f()
  } catch (e) {
    throw new Error(`threw synchronously instead of rejecting: ${e}`)
  }
  const err = await p.then(
    () => null,
    (e) => e,
  )
  expect(err).toBeInstanceOf(Error)
  expect(err).toMatchObject(expected)
}

describe('constructors', () => {
  const cases: Array<[string, () => unknown, object]> = [
    ['RateLimiter maxRequests 0', () => new RateLimiter({ maxRequests: 0 }), RANGE],
    ['RateLimiter maxRequests NaN', () => new RateLimiter({ maxRequests: NaN }), RANGE],
    ['RateLimiter maxRequests 1.5', () => new RateLimiter({ maxRequests: 1.5 }), RANGE],
    ['RateLimiter maxRequests huge', () => new RateLimiter({ maxRequests: 1e12 }), RANGE],
    ['RateLimiter maxRequests string', () => new RateLimiter({ maxRequests: '60' as any }), INVALID],
    ['RateLimiter windowSeconds 0', () => new RateLimiter({ windowSeconds: 0 }), RANGE],
    ['RateLimiter windowSeconds -5', () => new RateLimiter({ windowSeconds: -5 }), RANGE],
    ['RateLimiter windowSeconds Infinity', () => new RateLimiter({ windowSeconds: Infinity }), RANGE],
    ['RateLimiter prefix number', () => new RateLimiter({ prefix: 5 as any }), INVALID],
    ['RateLimiter options string', () => new RateLimiter(undefined, 'x' as any), INVALID],
    ['RateLimiter store number', () => new RateLimiter(5 as any, {}), INVALID],
    ['RateLimiter store plain object with options', () => new RateLimiter({} as any, {}), INVALID],
    ['TokenBudget without maxTokens', () => new TokenBudget({} as any), INVALID],
    ['TokenBudget maxTokens -1', () => new TokenBudget({ maxTokens: -1 }), RANGE],
    ['TokenBudget periodSeconds NaN', () => new TokenBudget({ maxTokens: 1, periodSeconds: NaN }), RANGE],
    ['TokenBudget holdTtlSeconds 0', () => new TokenBudget({ maxTokens: 1, holdTtlSeconds: 0 }), RANGE],
    ['ResponseCache ttl 0', () => new ResponseCache({ ttl: 0 }), RANGE],
    ['ResponseCache ttl string', () => new ResponseCache({ ttl: '60' as any }), INVALID],
    ['ResponseCache keyFn not a function', () => new ResponseCache({ keyFn: 'k' as any }), INVALID],
    ['SessionStore ttl -1', () => new SessionStore({ ttl: -1 }), RANGE],
    ['SessionStore maxBytes 0', () => new SessionStore({ maxBytes: 0 }), RANGE],
    ['MemoryStore now not a function', () => new MemoryStore({ now: 5 as any }), INVALID],
    ['RedisStore URL of another scheme', () => new RedisStore('https://x'), INVALID],
    ['RedisStore empty URL', () => new RedisStore(''), INVALID],
    ['RedisStore db -1', () => new RedisStore({ db: -1 }), RANGE],
  ]
  it.each(cases)('%s', (_name, make, expected) => {
    let err: unknown
    try {
      make()
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(Error)
    expect(err).toMatchObject(expected)
  })
})

describe('methods reject bad arguments', () => {
  const store = new MemoryStore()
  const limiter = new RateLimiter(store, { prefix: 'bad:' })
  const budget = new TokenBudget(store, { maxTokens: 100, prefix: 'bad:' })
  const cache = new ResponseCache(store, { prefix: 'bad:' })
  const sessions = new SessionStore(store, { prefix: 'bad:' })

  it.each(badIds)('ids: %s', async (id, expected) => {
    await rejects(() => limiter.check(id as any), expected)
    await rejects(() => limiter.record(id as any), expected)
    await rejects(() => limiter.consume(id as any), expected)
    await rejects(() => budget.check(id as any), expected)
    await rejects(() => budget.record(id as any, 1), expected)
    await rejects(() => budget.reserve(id as any, 1), expected)
    await rejects(() => sessions.save(id as any, {}), expected)
    await rejects(() => sessions.load(id as any), expected)
    await rejects(() => sessions.append(id as any, {}), expected)
    await rejects(() => sessions.touch(id as any), expected)
    await rejects(() => sessions.destroy(id as any), expected)
    await rejects(() => cache.get(id as any, []), expected)
    await rejects(() => cache.set(id as any, [], 1), expected)
    await rejects(() => cache.invalidate(id as any, []), expected)
  })

  it.each(badCounts)('token counts: %s', async (n, expected) => {
    await rejects(() => budget.record('b', n as any), expected)
    await rejects(() => budget.reserve('b', n as any), expected)
    const { hold } = await budget.reserve('b', 1)
    await rejects(() => budget.settle(hold!, n as any), expected)
    await budget.release(hold!)
    expect(await budget.check('b')).toMatchObject({ used: 0, reserved: 0 })
  })

  it('holds that are not holds', async () => {
    for (const h of [undefined, null, 'hold', 5, {}, { bucket: 'b' }, { id: 'x' }, { bucket: 1, id: 'x' }]) {
      await rejects(() => budget.settle(h as any, 1), INVALID)
      await rejects(() => budget.release(h as any), INVALID)
    }
  })

  it('messages that are not arrays, values JSON cannot hold', async () => {
    await rejects(() => cache.get('m', 'hello' as any), INVALID)
    await rejects(() => cache.set('m', {} as any, 1), INVALID)
    await rejects(() => cache.set('m', [], undefined), INVALID)
    const cyclic: any = { a: 1 }
    cyclic.self = cyclic
    await rejects(() => cache.set('m', [], cyclic), INVALID)
    await rejects(() => cache.get('m', [cyclic]), INVALID)
    await rejects(() => cache.set('m', [], { n: 10n }), INVALID)
    await rejects(() => sessions.save('s', undefined), INVALID)
    await rejects(() => sessions.save('s', cyclic), INVALID)
    await rejects(() => sessions.append('s'), INVALID)
    await rejects(() => sessions.append('s', undefined), INVALID)
    expect(() => requestKey('', [])).toThrow(expect.objectContaining(INVALID))
    expect(() => requestKey('m', null as any)).toThrow(expect.objectContaining(INVALID))
  })

  it('a keyFn that returns no string, or throws', async () => {
    const c1 = new ResponseCache(store, { keyFn: () => 5 as any })
    await rejects(() => c1.get('m', []), INVALID)
    const c2 = new ResponseCache(store, {
      keyFn: () => {
        throw new Error('boom')
      },
    })
    const err = await c2.get('m', []).catch((e) => e)
    expect(err).toMatchObject({ message: 'boom' })
  })

  it('an injected clock that returns garbage', async () => {
    for (const t of [NaN, -1, 'now', undefined, Infinity]) {
      const s = new MemoryStore({ now: () => t as any })
      await rejects(() => new RateLimiter(s).consume('k'), RANGE)
      await rejects(() => new SessionStore(s).load('k'), RANGE)
    }
  })

  it('ids with Redis-special characters and unicode are just ids', async () => {
    const clock = new Clock()
    const s = new MemoryStore({ now: clock.now })
    const rl = new RateLimiter(s, { maxRequests: 1, prefix: 'tenant-a:' })
    const other = new RateLimiter(s, { maxRequests: 1, prefix: 'tenant-b:' })
    for (const id of ['{x}', '*', 'a:b', 'line\nbreak', '😀', '\u0000', ' ']) {
      expect((await rl.consume(id)).allowed).toBe(true)
      expect((await rl.consume(id)).allowed).toBe(false)
      expect((await other.consume(id)).allowed).toBe(true)
    }
  })

  it('a cache key holding another kind of value is evicted and read as a miss (as on Redis)', async () => {
    const s = new MemoryStore()
    await new RateLimiter(s, { prefix: 'mixed:' }).consume('k')
    const cache = new ResponseCache(s, { prefix: 'mixed:', keyFn: () => 'k' })
    expect(await cache.get('m', [])).toBeNull()
    await cache.set('m', [], 1)
    expect(await cache.get('m', [])).toBe(1)
  })

  it('two classes on one prefix get a typed store error, not a crash', async () => {
    const s = new MemoryStore()
    await new ResponseCache(s, { prefix: 'same:', keyFn: () => 'k' }).set('m', [], 1)
    const err = await new RateLimiter(s, { prefix: 'same:' }).consume('k').catch((e) => e)
    expect(err).toMatchObject({ name: 'StoreError', code: codes.STORE_ERROR })
  })
})
