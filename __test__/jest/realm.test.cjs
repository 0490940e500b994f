// Run by jest, whose sandbox gives each test file its own realm: errors made by native code
// fail `instanceof Error` there (jestjs/jest#2549). tollgate builds its errors in JavaScript,
// in the caller's realm, so these hold.
const net = require('node:net')
const {
  MemoryStore,
  RateLimiter,
  RedisStore,
  ResponseCache,
  SessionStore,
  StoreError,
  TokenBudget,
  codes,
} = require('../../lib/index.js')

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

describe('inside jest', () => {
  test('argument errors are TypeError / RangeError of this realm, with codes', async () => {
    const rl = new RateLimiter(new MemoryStore(), { maxRequests: 1 })
    const err = await rl.consume('').catch((e) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe(codes.INVALID_ARG)
    await expect(rl.check(5)).rejects.toThrow(TypeError)
    expect(() => new RateLimiter({ maxRequests: -1 })).toThrow(RangeError)
    const budget = new TokenBudget({ maxTokens: 5 })
    await expect(budget.record('b', 1.5)).rejects.toBeInstanceOf(RangeError)
  })

  test('a session over maxBytes is a RangeError of this realm', async () => {
    const s = new SessionStore(new MemoryStore(), { maxBytes: 10 })
    const err = await s.append('id', 'x'.repeat(20)).catch((e) => e)
    expect(err).toBeInstanceOf(RangeError)
    expect(err.code).toBe(codes.TOO_LARGE)
  })

  test('store errors from the native async path are StoreError and Error of this realm', async () => {
    const store = new RedisStore(`redis://127.0.0.1:${await freePort()}`, { connectTimeoutMs: 100 })
    const err = await new ResponseCache(store).get('m', []).catch((e) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe(codes.STORE_UNAVAILABLE)
    await store.close()
    await expect(new ResponseCache(store).get('m', [])).rejects.toThrow(StoreError)
  })

  test('results and cached values compare equal with toEqual and toStrictEqual', async () => {
    const store = new MemoryStore()
    const rl = new RateLimiter(store, { maxRequests: 2, windowSeconds: 60 })
    expect(await rl.consume('k')).toStrictEqual({ allowed: true, remaining: 1, resetInSeconds: 60 })
    const cache = new ResponseCache(store)
    await cache.set('m', [], { message: { content: 'hi' }, list: [1] })
    expect(await cache.get('m', [])).toStrictEqual({ message: { content: 'hi' }, list: [1] })
  })
})
