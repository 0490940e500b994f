// tollgate/http against the real frameworks: express, fastify and hono apps on ephemeral ports,
// asked with fetch. Headers are checked against the grammar of the RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers-11: Structured Field Lists of Strings with parameters).
import type { AddressInfo } from 'node:net'
import { execFile } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { promisify } from 'node:util'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { rateLimit } from 'express-rate-limit'
import { afterAll, describe, expect, it } from 'vitest'
import { Guard, MemoryStore, RedisStore } from '../lib/index.js'
import { DRAFT, expressGuard, fastifyGuard, honoGuard, rateLimitHeaders, rateLimitStore } from '../lib/integrations/http.js'
import { Clock, redisUrl } from './helpers/stores.js'

// ---- a Structured Field (RFC 9651) List parser, for the fields' grammar ----------------------

type Bare = number | string | boolean | { bytes: string } | { token: string }
interface Item {
  value: Bare
  params: Record<string, Bare>
}

/** Parses an sf-list (RFC 9651 §4.2.1); throws on anything the grammar does not allow. */
function parseList(input: string): Item[] {
  let s = input.replace(/^ +| +$/g, '')
  const out: Item[] = []
  const bare = (): Bare => {
    let m: RegExpExecArray | null
    if ((m = /^-?\d{1,15}(\.\d{1,3})?/.exec(s))) {
      if (m[1] !== undefined && m[0].replace(/^-/, '').split('.')[0].length > 12) throw new Error('decimal too long')
      s = s.slice(m[0].length)
      return Number(m[0])
    }
    if (s[0] === '"') {
      let i = 1
      let v = ''
      for (; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === '\\') {
          i++
          if (s[i] !== '"' && s[i] !== '\\') throw new Error('bad escape')
        } else if (s.charCodeAt(i) < 0x20 || s.charCodeAt(i) > 0x7e) throw new Error('bad string character')
        v += s[i]
      }
      if (s[i] !== '"') throw new Error('unterminated string')
      s = s.slice(i + 1)
      return v
    }
    if ((m = /^:([A-Za-z0-9+/=]*):/.exec(s))) {
      s = s.slice(m[0].length)
      return { bytes: m[1] }
    }
    if ((m = /^\?([01])/.exec(s))) {
      s = s.slice(2)
      return m[1] === '1'
    }
    if ((m = /^[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*/.exec(s))) {
      s = s.slice(m[0].length)
      return { token: m[0] }
    }
    throw new Error(`not a bare item at ${JSON.stringify(s)}`)
  }
  for (;;) {
    const value = bare()
    const params: Record<string, Bare> = {}
    while (s[0] === ';') {
      s = s.slice(1).replace(/^ +/, '')
      const m = /^[a-z*][a-z0-9_\-.*]*/.exec(s)
      if (!m) throw new Error('bad parameter key')
      s = s.slice(m[0].length)
      if (s[0] === '=') {
        s = s.slice(1)
        params[m[0]] = bare()
      } else params[m[0]] = true
    }
    out.push({ value, params })
    s = s.replace(/^[ \t]+/, '')
    if (s === '') return out
    if (s[0] !== ',') throw new Error(`expected a comma at ${JSON.stringify(s)}`)
    s = s.slice(1).replace(/^[ \t]+/, '')
    if (s === '') throw new Error('trailing comma')
  }
}

const isInt = (x: Bare) => typeof x === 'number' && Number.isInteger(x) && x >= 0

/** The RateLimit-Policy field as the draft defines it: `name → { q, w?, qu? }`. */
function policyField(value: string | null) {
  expect(value, 'RateLimit-Policy is sent').not.toBeNull()
  const out: Record<string, { q: number; w?: number; qu?: string }> = {}
  for (const { value: name, params } of parseList(value!)) {
    expect(typeof name, 'a policy is named by a String').toBe('string')
    expect(isInt(params.q), 'q is a non-negative Integer').toBe(true)
    if (params.w !== undefined) expect(isInt(params.w) && (params.w as number) > 0, 'w is a positive Integer').toBe(true)
    if (params.qu !== undefined) expect(['requests', 'content-bytes', 'concurrent-requests']).toContain(params.qu)
    out[name as string] = { q: params.q as number, ...(params.w === undefined ? {} : { w: params.w as number }), ...(params.qu === undefined ? {} : { qu: params.qu as string }) }
  }
  return out
}

/** The RateLimit field: `name → { r, t? }`. */
function limitField(value: string | null) {
  expect(value, 'RateLimit is sent').not.toBeNull()
  const out: Record<string, { r: number; t?: number }> = {}
  for (const { value: name, params } of parseList(value!)) {
    expect(typeof name).toBe('string')
    expect(isInt(params.r), 'r is a non-negative Integer').toBe(true)
    if (params.t !== undefined) expect(isInt(params.t), 't is a non-negative Integer').toBe(true)
    out[name as string] = { r: params.r as number, ...(params.t === undefined ? {} : { t: params.t as number }) }
  }
  return out
}

describe('the Structured Field List parser the tests use', () => {
  it("reads the draft's examples and refuses what the grammar does not allow", () => {
    expect(parseList('"burst";q=100;w=60,"daily";q=1000;w=86400')).toEqual([
      { value: 'burst', params: { q: 100, w: 60 } },
      { value: 'daily', params: { q: 1000, w: 86400 } },
    ])
    expect(parseList('"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:')[0].params).toEqual({ q: 65535, qu: 'content-bytes', w: 10, pk: { bytes: 'sdfjLJUOUH==' } })
    for (const bad of ['"a";q=1,', '"a" ;q=1', '"a";Q=1', '"a', 'limit=10, remaining=5', '"a";q=1;;w=2']) expect(() => parseList(bad), bad).toThrow()
  })
})

// ---- the apps ------------------------------------------------------------------------------

interface App {
  url: string
  close(): Promise<void>
}

/** A gate a route waits on, opened by the test. */
function gate() {
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  let entered!: () => void
  const reached = new Promise<void>((r) => (entered = r))
  return { open, opened, entered, reached }
}

type Routes = { slow: ReturnType<typeof gate> }

const listen = (server: http.Server) =>
  new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)))
const closeServer = (server: http.Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })

const frameworks: Record<string, (guard: Guard, options: any, routes: Routes) => Promise<App>> = {
  async express(guard, options, routes) {
    const app = express()
    app.set('env', 'test') // the error a throwing key() leads to is not printed
    app.use(expressGuard(guard, options))
    app.get('/hello', (_req, res) => void res.json({ hello: 'world' }))
    app.get('/slow', async (_req, res) => {
      routes.slow.entered()
      await routes.slow.opened
      res.send('done')
    })
    const server = http.createServer(app)
    return { url: await listen(server), close: () => closeServer(server) }
  },
  async fastify(guard, options, routes) {
    const app = Fastify()
    app.addHook('onRequest', fastifyGuard(guard, options))
    app.get('/hello', async () => ({ hello: 'world' }))
    app.get('/slow', async () => {
      routes.slow.entered()
      await routes.slow.opened
      return 'done'
    })
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    return {
      url,
      close: async () => {
        app.server.closeAllConnections()
        await app.close()
      },
    }
  },
  async hono(guard, options, routes) {
    const app = new Hono()
    app.use(honoGuard(guard, options))
    app.get('/hello', (c) => c.json({ hello: 'world' }))
    app.get('/slow', async (c) => {
      routes.slow.entered()
      await routes.slow.opened
      return c.text('done')
    })
    const server = await new Promise<http.Server>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as http.Server))
    })
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => closeServer(server) }
  },
}

/** The user a request is from: its x-user header (express's req, fastify's request, hono's Context). */
const userOf = (req: any) => (req.req && typeof req.req.header === 'function' ? req.req.header('x-user') : req.headers['x-user']) ?? null

const opened: App[] = []
afterAll(async () => {
  await Promise.all(opened.map((a) => a.close()))
})

/** Waits until `f()` holds (a server-side event the client cannot see), at most 5 s. */
async function until(f: () => Promise<boolean>) {
  for (let i = 0; i < 500; i++) {
    if (await f()) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error('timed out')
}

for (const [name, start] of Object.entries(frameworks)) {
  describe(`tollgate/http on ${name}`, () => {
    const setup = async (limits: any[], extra: Record<string, unknown> = {}, store: MemoryStore | RedisStore = new MemoryStore()) => {
      const guard = new Guard({ store, limits })
      const routes = { slow: gate() }
      const app = await start(guard, { key: userOf, limits, ...extra }, routes)
      opened.push(app)
      const get = (path: string, user: string | null = 'u1', init: RequestInit = {}) => fetch(app.url + path, { ...init, headers: user === null ? {} : { 'x-user': user } })
      return { guard, routes, app, get }
    }

    it('sends RateLimit-Policy and RateLimit on every response, and 429 with Retry-After past the limit', async () => {
      const limits = [
        { id: 'user-rpm', scope: (c: any) => c.key, requests: 2, per: '1m' as const },
        { id: 'user-concurrency', scope: (c: any) => c.key, concurrent: 3 },
        { id: 'user-tokens', scope: (c: any) => c.key, tokens: 1_000, per: '1h' as const },
      ]
      const { get, guard } = await setup(limits)
      const first = await get('/hello')
      expect(first.status).toBe(200)
      expect(await first.json()).toEqual({ hello: 'world' })
      // token limits are not request quotas: they are not in the headers
      expect(policyField(first.headers.get('ratelimit-policy'))).toEqual({ 'user-rpm': { q: 2, w: 60 }, 'user-concurrency': { q: 3, qu: 'concurrent-requests' } })
      expect(limitField(first.headers.get('ratelimit'))).toEqual({ 'user-rpm': { r: 1 }, 'user-concurrency': { r: 2 } })
      expect((await get('/hello')).status).toBe(200)
      const refused = await get('/hello')
      expect(refused.status).toBe(429)
      const retry = refused.headers.get('retry-after')
      expect(retry).toMatch(/^\d+$/)
      expect(Number(retry)).toBeGreaterThan(0)
      expect(Number(retry)).toBeLessThanOrEqual(60)
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(await refused.json()).toMatchObject({ type: 'https://iana.org/assignments/http-problem-types#quota-exceeded', status: 429, 'violated-policies': ['user-rpm'] })
      const fields = limitField(refused.headers.get('ratelimit'))
      expect(fields['user-rpm']).toEqual({ r: 0, t: Number(retry) })
      policyField(refused.headers.get('ratelimit-policy'))
      // another client has its own window; tokens were never charged by the HTTP layer
      expect((await get('/hello', 'u2')).status).toBe(200)
      await until(async () => (await guard.peek({ key: 'u1' })).remaining['user-concurrency'] === 3)
      expect((await guard.peek({ key: 'u1' })).remaining).toEqual({ 'user-rpm': 0, 'user-concurrency': 3, 'user-tokens': 1_000 })
    })

    it('holds a concurrency slot until the response is sent', async () => {
      const limits = [{ id: 'one-at-a-time', scope: (c: any) => c.key, concurrent: 1 }]
      const { get, guard, routes } = await setup(limits)
      const slow = get('/slow')
      await routes.slow.reached
      const second = await get('/hello')
      expect(second.status).toBe(429)
      expect(limitField(second.headers.get('ratelimit'))['one-at-a-time'].r).toBe(0)
      expect((await guard.peek({ key: 'u1' })).remaining['one-at-a-time']).toBe(0)
      routes.slow.open()
      expect(await (await slow).text()).toBe('done')
      await until(async () => (await guard.peek({ key: 'u1' })).remaining['one-at-a-time'] === 1)
      expect((await get('/hello')).status).toBe(200)
    })

    it('frees the slot when the client goes away mid-request', async () => {
      const limits = [{ id: 'one-at-a-time', scope: (c: any) => c.key, concurrent: 1 }]
      const { get, guard, routes } = await setup(limits)
      const abort = new AbortController()
      const slow = get('/slow', 'u1', { signal: abort.signal }).catch((e) => e)
      await routes.slow.reached
      expect((await guard.peek({ key: 'u1' })).remaining['one-at-a-time']).toBe(0)
      abort.abort()
      expect(await slow).toBeInstanceOf(Error)
      await until(async () => (await guard.peek({ key: 'u1' })).remaining['one-at-a-time'] === 1)
      routes.slow.open()
    })

    it('a key() that throws goes to the error path (500) and charges nothing; a null key is not guarded', async () => {
      const limits = [{ id: 'user-rpm', scope: (c: any) => c.key, requests: 5, per: '1m' as const }]
      const guard = new Guard({ store: new MemoryStore(), limits })
      const app = await start(
        guard,
        {
          key: (req: any) => {
            const u = userOf(req)
            if (u === 'bad') throw new Error('no such user')
            return u
          },
          limits,
        },
        { slow: gate() },
      )
      opened.push(app)
      const bad = await fetch(`${app.url}/hello`, { headers: { 'x-user': 'bad' } })
      expect(bad.status).toBe(500)
      expect(bad.headers.get('ratelimit')).toBeNull()
      expect((await guard.peek({ key: 'bad' })).remaining).toEqual({ 'user-rpm': 5 })
      expect(guard.stats().decisions).toBe(0)
      const anonymous = await fetch(`${app.url}/hello`)
      expect(anonymous.status).toBe(200)
      expect(anonymous.headers.get('ratelimit')).toBeNull()
      expect(guard.stats().decisions).toBe(0)
    })
  })
}

describe('tollgate/http details', () => {
  it("a calendar limit's effective window runs to the period's end; the draft is named", () => {
    const clock = new Clock(Date.UTC(2026, 0, 15, 23, 0, 0))
    const limits = [{ id: 'daily', scope: 'all', requests: 100, per: 'day' as const }]
    const guard = new Guard({ store: new MemoryStore({ now: clock.now }), limits })
    const fields = rateLimitHeaders(guard, limits, { ok: true, limit: null, retryAfterMs: null, remaining: { daily: 99 } } as any, clock.now())!
    expect(policyField(fields['RateLimit-Policy'])).toEqual({ daily: { q: 100, w: 86_400 } })
    expect(limitField(fields.RateLimit)).toEqual({ daily: { r: 99, t: 3_600 } })
    expect(DRAFT).toBe('draft-ietf-httpapi-ratelimit-headers-11')
  })

  it('options are checked: a guard, a key function, the limits of that guard (its own policy by default)', () => {
    const limits = [{ id: 'rpm', scope: 'all', requests: 1, per: '1m' as const }]
    const guard = new Guard({ store: new MemoryStore(), limits })
    expect(() => expressGuard({} as any, { key: () => 'x', limits })).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => expressGuard(guard, { limits } as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => expressGuard(guard, { key: () => 'x', limits: 'rpm' } as any)).toThrow(/options\.limits/)
    expect(guard.policy).toEqual([{ id: 'rpm', requests: 1, per: '1m' }])
    expect(() => expressGuard(guard, { key: () => 'x' })).not.toThrow()
    expect(() => expressGuard(guard, { key: () => 'x', limits: [{ id: 'other', scope: 'all', requests: 1, per: '1m' as const }] })).toThrow(/not one of the guard's limits/)
    expect(() => expressGuard(guard, { key: () => 'x', limit: limits } as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_UNKNOWN_OPTION' }))
    expect(() => expressGuard(guard, { key: () => 'x', headers: false })).not.toThrow()
  })

  it('hono outside Node: the slot is freed once the body is read, or cancelled', async () => {
    const limits = [{ id: 'one', scope: (c: any) => c.key, concurrent: 1 }]
    const guard = new Guard({ store: new MemoryStore(), limits })
    const app = new Hono()
    app.use(honoGuard(guard, { key: () => 'k', limits }))
    app.get('/', (c) => c.text('hello'))
    const res = await app.request('/')
    expect(limitField(res.headers.get('ratelimit'))).toEqual({ one: { r: 0 } })
    expect((await guard.peek({ key: 'k' })).remaining.one).toBe(0)
    expect(await res.text()).toBe('hello')
    expect((await guard.peek({ key: 'k' })).remaining.one).toBe(1)
    const again = await app.request('/')
    expect((await app.request('/')).status).toBe(429)
    await again.body!.cancel()
    expect((await guard.peek({ key: 'k' })).remaining.one).toBe(1)
  })

  it('on Redis: limits hold across two apps sharing the store', async () => {
    const prefix = `t:http:${Date.now()}:`
    const limits = [{ id: 'user-rpm', scope: (c: any) => c.key, requests: 3, per: '1m' as const }]
    const a = new RedisStore(redisUrl())
    const b = new RedisStore(redisUrl())
    try {
      const apps = []
      for (const store of [a, b]) {
        const app = express()
        app.use(expressGuard(new Guard({ store, prefix, limits }), { key: (req) => req.get('x-user') ?? null, limits }))
        app.get('/', (_req, res) => void res.send('ok'))
        const server = http.createServer(app)
        apps.push({ url: await listen(server), close: () => closeServer(server) })
      }
      opened.push(...apps)
      const statuses = []
      for (const url of [apps[0].url, apps[1].url, apps[0].url, apps[1].url]) {
        const res = await fetch(url, { headers: { 'x-user': 'u1' } })
        statuses.push(res.status)
        limitField(res.headers.get('ratelimit'))
      }
      expect(statuses).toEqual([200, 200, 200, 429])
    } finally {
      await a.close()
      await b.close()
    }
  })
})

describe('express-rate-limit over tollgate (rateLimitStore)', () => {
  const start = async (limiter: express.RequestHandler) => {
    const app = express()
    app.use(limiter)
    app.get('/', (_req, res) => void res.send('ok'))
    app.get('/fail', (_req, res) => void res.status(500).send('no'))
    const server = http.createServer(app)
    const url = await listen(server)
    opened.push({ url, close: () => closeServer(server) })
    return url
  }

  it('limits hold (a refused request is not counted), resetKey gives the window back, decrement backs skipFailedRequests', async () => {
    // express-rate-limit compares resetTime with the real time: the injected clock starts there.
    const clock = new Clock(Date.now())
    const store = rateLimitStore({ store: new MemoryStore({ now: clock.now }) })
    const limiter = rateLimit({ windowMs: 60_000, limit: 2, store, keyGenerator: () => 'client', skipFailedRequests: true })
    const url = await start(limiter)
    expect((await fetch(`${url}/fail`)).status).toBe(500) // given back by decrement
    await until(async () => (await store.get('client')).totalHits === 0)
    expect((await fetch(url)).status).toBe(200)
    expect((await fetch(url)).status).toBe(200)
    const refused = await fetch(url)
    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get('retry-after'))).toBe(60)
    expect(await store.get('client')).toMatchObject({ totalHits: 2 })
    await store.resetKey('client')
    expect(await store.get('client')).toMatchObject({ totalHits: 0 })
    expect((await fetch(url)).status).toBe(200)
    // the window slides: a minute later the counts have left it
    clock.advance(60_000)
    expect(await store.get('client')).toMatchObject({ totalHits: 0 })
    expect((await fetch(url)).status).toBe(200)
    store.shutdown()
  })

  it('a limit function is refused with a clear error', async () => {
    const store = rateLimitStore()
    expect(() => store.init({ windowMs: 60_000, limit: () => 5 })).toThrow(/fixed limit/)
    await expect(store.increment('k')).rejects.toThrow(/fixed limit/)
  })
})

describe('the entry points', () => {
  const run = promisify(execFile)
  const root = path.join(__dirname, '..')

  it('tollgate/http and tollgate/ai-sdk: ESM and CommonJS give the same objects, and none of them loads a framework or the AI SDK', async () => {
    const code = `
      import * as http from 'tollgate/http'
      import * as aiSdk from 'tollgate/ai-sdk'
      import { createRequire } from 'node:module'
      const require = createRequire(import.meta.url)
      const same = (esm, cjs) => Object.keys(cjs).every((k) => esm[k] === cjs[k]) && Object.keys(esm).filter((k) => k !== 'default').sort().join() === Object.keys(cjs).sort().join()
      const loaded = Object.keys(require.cache).filter((f) => /node_modules[\\/](express|express-rate-limit|fastify|hono|@hono|ai|@ai-sdk)[\\/]/.test(f))
      console.log(JSON.stringify({ http: same(http, require('tollgate/http')), aiSdk: same(aiSdk, require('tollgate/ai-sdk')), names: Object.keys(require('tollgate/http')).length, loaded }))
    `
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: root, timeout: 10_000 })
    expect(JSON.parse(stdout)).toEqual({ http: true, aiSdk: true, names: 7, loaded: [] })
  })
})
