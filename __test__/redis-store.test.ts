import { createHash } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import Redis from 'ioredis'
import { createClient } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CostTracker, Guard, RateLimiter, RedisStore, ResponseCache, SessionStore, StoreError, TokenBudget } from '../lib/index.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { redisUrl } from './helpers/stores.js'

const unique = (name: string) => `t:${name}:${Math.random().toString(36).slice(2, 10)}:`

describe('RedisStore: where it connects', () => {
  const admin = new Redis(redisUrl())
  beforeAll(async () => {
    await admin.call('ACL', 'SETUSER', 'tollgate-test', 'on', '>s3cret:pw', '~*', '+@all')
  })
  afterAll(async () => {
    await admin.call('ACL', 'DELUSER', 'tollgate-test')
    await admin.quit()
  })

  it('takes a URL with user, password and database', async () => {
    const port = new URL(redisUrl()).port
    const store = new RedisStore(`redis://tollgate-test:${encodeURIComponent('s3cret:pw')}@127.0.0.1:${port}/3`)
    const prefix = unique('url')
    await new RateLimiter(store, { prefix }).consume('k')
    const db3 = new Redis(`${redisUrl()}/3`)
    expect(await db3.llen(`${prefix}k`)).toBe(1)
    expect(await admin.exists(`${prefix}k`)).toBe(0) // not in db 0
    await db3.quit()
    await store.close()
  })

  it('takes host/port/db/username/password options', async () => {
    const port = Number(new URL(redisUrl()).port)
    const store = new RedisStore({ host: '127.0.0.1', port, db: 5, username: 'tollgate-test', password: 's3cret:pw' })
    const prefix = unique('opts')
    await new TokenBudget(store, { maxTokens: 10, prefix }).record('b', 3)
    const db5 = new Redis(`${redisUrl()}/5`)
    expect(await db5.hget(`${prefix}b`, 'u')).toBe('3')
    await db5.quit()
    await store.close()
  })

  it('reuses the server, credentials and database of an ioredis client', async () => {
    const port = Number(new URL(redisUrl()).port)
    const client = new Redis({ port, host: '127.0.0.1', db: 2, username: 'tollgate-test', password: 's3cret:pw', lazyConnect: true })
    const prefix = unique('ioredis')
    // tekimax's examples pass an ioredis client straight in.
    const limiter = new RateLimiter(client, { maxRequests: 60, windowSeconds: 60, prefix })
    const cache = new ResponseCache(client, { ttl: 3600, prefix })
    expect(await limiter.consume('openai')).toEqual({ allowed: true, remaining: 59, resetInSeconds: 60 })
    await cache.set('gpt-4o', [], { ok: 1 })
    const db2 = new Redis(`${redisUrl()}/2`)
    expect(await db2.llen(`${prefix}openai`)).toBe(1)
    expect(await db2.exists(cache.keyFor('gpt-4o', []))).toBe(1)
    await db2.quit()
    client.disconnect()
  })

  it('reuses the server, credentials and database of a node-redis client', async () => {
    const port = Number(new URL(redisUrl()).port)
    const client = createClient({ socket: { host: '127.0.0.1', port }, username: 'tollgate-test', password: 's3cret:pw', database: 4 })
    const urlClient = createClient({ url: `redis://tollgate-test:s3cret%3Apw@127.0.0.1:${port}/6` })
    const prefix = unique('node-redis')
    await new SessionStore(client, { prefix }).save('s', { messages: [] })
    await new SessionStore(urlClient, { prefix }).save('s', { messages: [1] })
    const db4 = new Redis(`${redisUrl()}/4`)
    const db6 = new Redis(`${redisUrl()}/6`)
    expect(await db4.hget(`${prefix}s`, 'm')).toBe('[]')
    expect(await db6.hget(`${prefix}s`, 'm')).toBe('[1]')
    await Promise.all([db4.quit(), db6.quit()])
  })

  it('speaks TLS (rediss://), from a URL or from an ioredis client with tls options', async () => {
    const server = await startRedis([], true)
    try {
      const store = new RedisStore(`${server.url}#insecure`) // self-signed: skip verification
      expect(await new RateLimiter(store, { prefix: 'tls:' }).consume('k')).toEqual({ allowed: true, remaining: 59, resetInSeconds: 60 })
      await store.close()
      const client = new Redis({ port: server.port, host: '127.0.0.1', tls: { rejectUnauthorized: false }, lazyConnect: true })
      expect((await new RateLimiter(client, { prefix: 'tls:' }).consume('k')).remaining).toBe(58)
      client.disconnect()
      const nodeRedis = createClient({ socket: { host: '127.0.0.1', port: server.port, tls: true, rejectUnauthorized: false } })
      expect((await new RateLimiter(nodeRedis, { prefix: 'tls:' }).consume('k')).remaining).toBe(57)
      // Verification is on by default: a self-signed certificate is refused, as a StoreError.
      const strict = new RedisStore(server.url)
      await expect(new RateLimiter(strict).check('k')).rejects.toBeInstanceOf(StoreError)
      await strict.close()
    } finally {
      await server.stop()
    }
  })

  it('a wrong password is a StoreError, not a hang', async () => {
    const port = new URL(redisUrl()).port
    const store = new RedisStore(`redis://tollgate-test:wrong@127.0.0.1:${port}`)
    const err = await new RateLimiter(store).check('k').catch((e) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toMatch(/^ERR_TOLLGATE_STORE_/)
    await store.close()
  })

  it('classes given the same URL string share one connection', async () => {
    const url = `${redisUrl()}/7`
    const a = new RateLimiter(url, { prefix: unique('share') })
    const b = new TokenBudget(url, { maxTokens: 5, prefix: unique('share') })
    await a.consume('k')
    await b.record('k', 1)
    const clients = ((await admin.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => / db=7 /.test(l))
    expect(clients).toHaveLength(1)
  })

  it('rejects what is not a Redis URL', () => {
    expect(() => new RedisStore('http://localhost:6379')).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => new RedisStore({ port: 70000 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_TOLLGATE_OUT_OF_RANGE' }))
    expect(() => new RedisStore({ cluster: [] })).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => new RedisStore(redisUrl(), { commandTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_OUT_OF_RANGE' }))
  })
})

describe('RedisStore: one round trip per call, every key with an expiry', () => {
  let server: RedisServer
  let admin: Redis
  beforeAll(async () => {
    server = await startRedis()
    admin = new Redis(server.url)
  })
  afterAll(async () => {
    admin.disconnect()
    await server.stop()
  })

  it('every decision is exactly one EVALSHA and nothing else', async () => {
    const store = new RedisStore(server.url)
    const prefix = unique('rt')
    const limiter = new RateLimiter(store, { prefix, maxRequests: 1000 })
    const budget = new TokenBudget(store, { prefix, maxTokens: 1_000_000 })
    const cache = new ResponseCache(store, { prefix })
    const sessions = new SessionStore(store, { prefix })
    const tracker = new CostTracker(store, { prefix, onAlert: () => {} })
    const calls = [
      () => limiter.consume('a'),
      () => limiter.check('a'),
      () => limiter.record('a'),
      () => budget.reserve('b', 5),
      () => budget.record('b', 5),
      () => budget.check('b'),
      () => cache.set('m', [], { x: 1 }),
      () => cache.get('m', []),
      () => sessions.append('s', { role: 'user' }),
      () => sessions.load('s'),
      () => sessions.touch('s'),
      () => tracker.recordUsage('gpt-4o', 10, 10, { feature: 'x' }),
      () => tracker.reserve(0.01).then(({ hold }) => tracker.settle(hold!, 0.001)),
      () => tracker.totals(),
    ]
    for (const call of calls) await call() // warm up: connects and loads each script once
    // MONITOR shows every command a client sends (and, tagged "lua", what scripts run).
    const monitor = await admin.monitor()
    const sent: string[] = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') sent.push(args[0].toLowerCase())
    })
    const n = 10
    for (let i = 0; i < n; i++) for (const call of calls) await call()
    await new Promise((r) => setTimeout(r, 50)) // let MONITOR's stream catch up
    monitor.disconnect()
    // reserve-then-settle is two decisions.
    expect(sent.filter((c) => c === 'evalsha')).toHaveLength(n * (calls.length + 1))
    expect(sent.filter((c) => c !== 'evalsha')).toEqual([])
    await store.close()
  })

  it('concurrent limiter calls in one turn share one EVALSHA, and each decision stays exact', async () => {
    const store = new RedisStore(server.url)
    const limiter = new RateLimiter(store, { prefix: unique('batch'), maxRequests: 100 })
    await limiter.check('warm')
    const monitor = await admin.monitor()
    const sent: string[] = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') sent.push(args[0].toLowerCase())
    })
    const ids = Array.from({ length: 600 }, (_, i) => `k${i % 3}`)
    const results = await Promise.all(ids.map((id) => limiter.consume(id)))
    await new Promise((r) => setTimeout(r, 50))
    monitor.disconnect()
    expect(results.filter((r) => r.allowed)).toHaveLength(300) // 100 per id, 3 ids
    // 600 decisions in batches of at most 256: three script calls.
    expect(sent).toEqual(['evalsha', 'evalsha', 'evalsha'])
    await store.close()
  })

  it('a refused key is refused locally until its reset, with no Redis command (blocked-key cache)', async () => {
    let t = 1_700_000_000_000
    const store = new RedisStore(server.url, { now: () => t })
    const limiter = new RateLimiter(store, { prefix: unique('blocked'), maxRequests: 2, windowSeconds: 10 })
    await limiter.consume('k')
    t += 1_000
    await limiter.consume('k')
    const monitor = await admin.monitor()
    const sent: string[] = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') sent.push(args[0].toLowerCase())
    })
    // The first refusal comes from Redis and tells the exact reset: 10 s after the first consume.
    expect(await limiter.consume('k')).toEqual({ allowed: false, remaining: 0, resetInSeconds: 9 })
    const answers = []
    for (let i = 0; i < 50; i++) {
      t += 100
      answers.push(await limiter.consume('k'), await limiter.check('k'))
    }
    expect(answers.every((a) => !a.allowed)).toBe(true)
    expect(answers.at(-1)).toEqual({ allowed: false, remaining: 0, resetInSeconds: 4 })
    // record always counts, so it still goes to Redis.
    expect((await limiter.record('other')).allowed).toBe(true)
    t = 1_700_000_000_000 + 9_999
    expect((await limiter.consume('k')).allowed).toBe(false)
    t += 1
    // At the reset the next call asks Redis again, and the oldest entry has left the window.
    expect(await limiter.consume('k')).toMatchObject({ allowed: true, remaining: 0 })
    await new Promise((r) => setTimeout(r, 50))
    monitor.disconnect()
    expect(sent).toEqual(['evalsha', 'evalsha', 'evalsha'])
    expect(limiter.stats()).toMatchObject({ blockedLocally: 101, refused: { limit: 102 } })
    await store.close()
  })

  it('on the server clock the local block ends no later than the real one', async () => {
    const store = new RedisStore(server.url)
    const limiter = new RateLimiter(store, { prefix: unique('blocked-server'), maxRequests: 1, windowSeconds: 0.3 })
    const t0 = Date.now()
    await limiter.consume('k')
    expect((await limiter.consume('k')).allowed).toBe(false)
    await expect.poll(async () => (await limiter.consume('k')).allowed, { interval: 5, timeout: 2_000 }).toBe(true)
    // Admitted again only once the window had passed for Redis too.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300)
    await store.close()
  })

  it('blockedKeyCache: false asks Redis every time', async () => {
    const store = new RedisStore(server.url)
    const limiter = new RateLimiter(store, { prefix: unique('noblock'), maxRequests: 1, blockedKeyCache: false })
    await limiter.consume('k')
    for (let i = 0; i < 5; i++) expect((await limiter.consume('k')).allowed).toBe(false)
    expect(limiter.stats().blockedLocally).toBe(0)
    await store.close()
  })

  it('the scripts are the pinned ones (a change to a script or to the script library is deliberate)', async () => {
    // The SHA1 of each script as Redis runs it: the library's base, the parts the script names
    // (src/store/redis/scripts.rs), then the script's own file.
    const pinned: Record<string, string> = {
      budget: '8b95df33af33437a03f525a5c17502e368f76639',
      cache_get: '070a01d17939b6030091f3ad503837b8c05028f4',
      delete: '33106c58a41e9bd816530aab01f54669e4ede0dc',
      guard: '47ba19d1b85413edb58c7126c7d57f4c91413508',
      jobs: 'd03162cfc41b8149833323f33a13678ced679d38',
      lease: 'a92863340fa16c9389f4fe1458aa5decd559bf56',
      provider: '651e416ed073e202b23971ecbdd04cbf8168cb16',
      put: '44c0a36c0f8f2c17f22baf2b0dfe082155216f48',
      quota: 'acf9f30aeb437d36785ae114a0cdda3f5b2b8a3a',
      rate_limit: '33b91586808a73a7d355588d998de86a7e3f92b9',
      semantic_clear: '52e16912cad210ed553dc7c6f66ba84a30639ad6',
      semantic_count: '18c516d055b35a0c829932c4f7f75e41fa2c2bbd',
      semantic_delete: '5cdeb4c2165b3f2dc2466a1e0f35fc1fa398f946',
      semantic_fetch: '3bd9f3bc9e06cea0f87a4091c2dfb7b72beed8dc',
      semantic_get: '0b2edbd76157203199b6cdcaa1661f62d28179ff',
      semantic_set: '90550a56f5da6b90570e8ebb4d7973cc9e0c21d1',
      semantic_snapshot: 'd41dbe2fdf0423b4c6ef15f2b34f4375553c88f8',
      session: 'cccca7fa6c77677c5bff7eab1c1c0eeb30b0cf5f',
      spend: 'ac87cd642a5075b00de17bc33ce9ade829be8d53',
    }
    const parts: Record<string, string[]> = { budget: ['holds'], spend: ['holds'] }
    const dir = path.join(__dirname, '..', 'src', 'store', 'redis', 'scripts')
    const files = readdirSync(dir).filter((f) => f.endsWith('.lua'))
    expect(files.map((f) => f.slice(0, -4)).sort()).toEqual(Object.keys(pinned).sort())
    expect(readdirSync(path.join(dir, 'lib')).sort()).toEqual(['base.lua', 'holds.lua'])
    const read = (f: string) => readFileSync(path.join(dir, f))
    for (const [name, sha] of Object.entries(pinned)) {
      const text = Buffer.concat([read('lib/base.lua'), ...(parts[name] ?? []).map((p) => read(`lib/${p}.lua`)), read(`${name}.lua`)])
      expect(createHash('sha1').update(text).digest('hex'), name).toBe(sha)
    }
    // The store registers exactly these…
    // (through require: the store's native handle sits under a symbol of the CommonJS module)
    const { kNative } = require('../lib/stores.js')
    const store = new (require('../lib/index.js').RedisStore)(server.url)
    expect(Object.fromEntries(store[kNative].scriptHashes())).toEqual(pinned)
    await store.close()
    // …and those are what it loaded into Redis (the scripts this file's tests ran).
    const loadedHere = ['budget', 'cache_get', 'put', 'rate_limit', 'session', 'spend'].map((f) => pinned[f])
    expect(await admin.call('SCRIPT', 'EXISTS', ...loadedHere)).toEqual(loadedHere.map(() => 1))
  })

  it('no key is ever left without an expiry', async () => {
    const store = new RedisStore(server.url)
    const prefix = unique('ttl')
    await new RateLimiter(store, { prefix }).record('r')
    await new TokenBudget(store, { prefix, maxTokens: 10 }).reserve('b', 1)
    await new ResponseCache(store, { prefix }).set('m', [], 1)
    await new SessionStore(store, { prefix }).append('s', 1)
    await new CostTracker(store, { prefix: `${prefix}cost:` }).recordCost(0.5, { tags: { feature: 'x' } })
    const keys = [...(await admin.keys(`${prefix}*`)), ...(await admin.keys(`{${prefix}cost:}*`))]
    expect(keys).toHaveLength(9)
    for (const k of keys) expect(await admin.pttl(k), k).toBeGreaterThan(0)
    await store.close()
  })

  it('no guard key is ever left without an expiry (the hold set made by a later hold included)', async () => {
    const store = new RedisStore(server.url)
    const prefix = unique('gttl')
    const g = new Guard({ store, prefix, limits: [{ id: 'w', scope: 'a', tokens: 1_000, per: '1m' }, { id: 'c', scope: 'a', concurrent: 5 }, { id: 'd', scope: 'a', usd: 1, per: 'day' }] })
    const req = { model: 'gpt-4o-mini', tokens: 10, maxTokens: 10 }
    await (await g.acquire({}, req)).settle({ inputTokens: 1, outputTokens: 1 })
    // The hold sets are gone (empty); these holds make them again, under TTLs set earlier.
    await g.acquire({}, req)
    await g.acquire({}, req)
    // A meter only ever peeked (a period started, nothing counted) expires too.
    const peeked = new Guard({ store, prefix: `${prefix}p:`, limits: [{ id: 'd', scope: 'a', requests: 1, per: 'day' }] })
    await peeked.peek({})
    expect(await admin.pttl(`${prefix}p:{gd:a}:m`)).toBeGreaterThan(0)
    await admin.del(`${prefix}p:{gd:a}:m`)
    const keys = await admin.keys(`${prefix}*`)
    expect(keys.sort()).toEqual([`${prefix}{gc:a}:x`, `${prefix}{gd:a}:m`, `${prefix}{gd:a}:x`, `${prefix}{gw:a}:m`, `${prefix}{gw:a}:x`, `${prefix}{gc:a}:m`].sort())
    for (const k of keys) expect(await admin.pttl(k), k).toBeGreaterThan(0)
    await store.close()
  })
})

describe('RedisStore: failures are fast and typed', () => {
  it('an unreachable server rejects with ERR_TOLLGATE_STORE_UNAVAILABLE quickly', async () => {
    const { freePort } = await import('./helpers/redis-server.js')
    const store = new RedisStore(`redis://127.0.0.1:${await freePort()}`, { connectTimeoutMs: 200, commandTimeoutMs: 100 })
    const limiter = new RateLimiter(store)
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now()
      const err = await limiter.consume('k').catch((e) => e)
      expect(err).toBeInstanceOf(StoreError)
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe('ERR_TOLLGATE_STORE_UNAVAILABLE')
      expect(Date.now() - t0).toBeLessThan(1_000)
    }
    await store.close()
  })

  it('a server that stops answering times out within connect + command timeout, then recovers', async () => {
    const server = await startRedis()
    const store = new RedisStore(server.url, { connectTimeoutMs: 200, commandTimeoutMs: 150 })
    const limiter = new RateLimiter(store, { maxRequests: 100, prefix: unique('pause') })
    expect((await limiter.consume('k')).allowed).toBe(true)
    server.process.kill('SIGSTOP')
    try {
      const t0 = Date.now()
      const errs = await Promise.all(Array.from({ length: 10 }, () => limiter.consume('k').catch((e) => e)))
      const elapsed = Date.now() - t0
      for (const e of errs) {
        expect(e).toBeInstanceOf(StoreError)
        expect(e.code).toBe('ERR_TOLLGATE_STORE_TIMEOUT')
      }
      expect(elapsed).toBeLessThan(200 + 150 + 300)
    } finally {
      server.process.kill('SIGCONT')
    }
    await expect.poll(async () => (await limiter.check('k').catch(() => null))?.remaining, { timeout: 5_000 }).toBeDefined()
    await store.close()
    await server.stop()
  })

  it('close() makes later calls reject with ERR_TOLLGATE_STORE_CLOSED', async () => {
    const store = new RedisStore(redisUrl())
    const cache = new ResponseCache(store, { prefix: unique('closed') })
    expect(await cache.get('m', [])).toBeNull()
    expect(store.closed).toBe(false)
    await store.close()
    expect(store.closed).toBe(true)
    await expect(cache.get('m', [])).rejects.toMatchObject({ name: 'StoreError', code: 'ERR_TOLLGATE_STORE_CLOSED' })
  })
})
