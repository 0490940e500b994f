import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import Redis from 'ioredis'
import { createClient } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CostTracker, Guard, RateLimiter, RedisStore, ResponseCache, SessionStore, StoreError, TokenBudget } from '../lib/index.js'
import { readdirSync } from 'node:fs'
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

  it('the scripts are the pinned ones (a change to a script is deliberate)', async () => {
    const pinned: Record<string, string> = {
      'budget.lua': 'c3a70d6a581c3963773cf0946180e453b3f9553b',
      'cache_get.lua': 'f65a329edc0cac9e17c985e4660f93b50a875002',
      'delete.lua': 'f5b91aba3529d91ec662c16e6dbeeefe84c60011',
      'guard.lua': 'b6678d047d35b3820b3e95469d77e6338fe4e53a',
      'jobs.lua': 'cd3f783c231d13e910ca06ccfac8ac277d968562',
      'provider.lua': 'e980a2846815d03268a544d162393822caa79b59',
      'put.lua': '72661a7b2cf7683f10047a91860a968c6c03835c',
      'quota.lua': 'eadb56d9a23a5c4a762e77b9f765943fc3511d52',
      'rate_limit.lua': '9846ae81b902d79ee8e3086b2019bf5be837ee81',
      'semantic_clear.lua': '0c0eaf25f280b4b20af166fa76c246b1d7ec59b1',
      'semantic_delete.lua': 'd49741ad7dfd4ec2589909329d1c60044d69b885',
      'semantic_fetch.lua': '313edaf03d6b4b78a7bc211f520e133756f9f372',
      'semantic_get.lua': 'a1b3f4829c1a1dfe2f03681501c5e454e77738dc',
      'semantic_set.lua': '7797cde247a197f88dc88a315020433b4eec070c',
      'semantic_snapshot.lua': '4d9af2d2314dddf7c61b0bb5d4efb4b8b9075ec4',
      'session.lua': '50e54d79f02653036db9eba4ae5bef1aaa1c7a94',
      'spend.lua': '87237f08e0f1c9c37b5869a90ced76127f68436b',
    }
    const dir = path.join(__dirname, '..', 'src', 'store', 'redis', 'scripts')
    expect(readdirSync(dir).sort()).toEqual(Object.keys(pinned).sort())
    for (const [file, sha] of Object.entries(pinned)) {
      expect(createHash('sha1').update(readFileSync(path.join(dir, file))).digest('hex'), file).toBe(sha)
    }
    // …and those are what the store loaded into Redis (the scripts this file's tests ran).
    const loadedHere = ['budget.lua', 'cache_get.lua', 'put.lua', 'rate_limit.lua', 'session.lua', 'spend.lua'].map((f) => pinned[f])
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
    expect(keys).toHaveLength(8)
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
