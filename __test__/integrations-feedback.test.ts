// Provider feedback shared by every process of a store (quota.pause, the wrappers pausing a
// routed key), guard.reset across instances (express-rate-limit's resetKey), and `wait` on
// acquire for the wrappers and the HTTP middleware. "Another process" is another Guard / Quota
// instance with its own connection to the same store: they share nothing but the store.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Guard, MemoryStore, Quota, RedisStore, codes } from '../lib/index.js'
import { expressGuard, rateLimitStore } from '../lib/integrations/http.js'
import { guardOpenAI } from '../lib/integrations/openai.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'
import { Clock, forEachStore, redisUrl } from './helpers/stores.js'

const MODEL = 'gpt-4o-mini'
const messages = [{ role: 'user' as const, content: 'Hello' }]

let fake: FakeProvider
beforeAll(async () => {
  fake = await startFakeProvider()
})
afterAll(() => fake.close())

const keysOf = () => [
  { id: 'key-a', apiKey: 'sk-a', rpm: 1_000, tpm: 1_000_000, rpd: 10_000, priority: 10 },
  { id: 'key-b', apiKey: 'sk-b', rpm: 1_000, tpm: 1_000_000, rpd: 10_000 },
]

forEachStore('quota.pause: a key the provider said is exhausted, for every process', ({ kind, store, prefix }) => {
  it('another Quota on the store routes around the paused key until its end, then back', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const p = prefix('qpause')
    const shared = kind === 'memory' ? store(clock) : null
    const one = new Quota({ store: shared ?? store(clock), prefix: p, now: clock.now, bufferMs: 0, rpmWindow: true })
    const two = new Quota({ store: shared ?? store(clock), prefix: p, now: clock.now, bufferMs: 0, rpmWindow: true })
    const keys = keysOf()
    expect(await two.check('org', keys, 10)).toMatchObject({ ok: true, key: { id: 'key-a' } })
    expect(await one.pause('org', 'key-a', clock.t + 30_000)).toBe(true)
    // An earlier end never shortens it.
    expect(await one.pause('org', keys[0], clock.t + 1_000)).toBe(true)
    const r = await two.reserve('org', keys, 10)
    expect(r).toMatchObject({ ok: true, key: { id: 'key-b' } })
    expect(r.checks[0]).toMatchObject({ key: 'key-a', ok: false, reason: 'paused', waitMs: 30_000 })
    clock.advance(10_000)
    expect(await two.reserve('org', [keys[0]], 10)).toMatchObject({ ok: false, reason: 'paused', waitMs: 20_000 })
    // Other scopes are not touched.
    expect(await two.reserve('other', [keys[0]], 10)).toMatchObject({ ok: true })
    clock.advance(20_000)
    expect(await two.reserve('org', keys, 10)).toMatchObject({ ok: true, key: { id: 'key-a' } })
  })

  it('bad input is a typed error, nothing written', async () => {
    const clock = new Clock()
    const q = new Quota({ store: store(clock), prefix: prefix('qpause-bad'), now: clock.now })
    await expect(q.pause('org', '', clock.t + 1)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(q.pause('org', { id: 7 } as any, clock.t + 1)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(q.pause('org', 'k', Number.NaN)).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(q.pause(5 as any, 'k', clock.t)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    expect(await q.reserve('org', [{ id: 'k', rpm: 10, tpm: 1_000, rpd: 100 }], 1)).toMatchObject({ ok: true })
  })

  it('a 429 on a routed key pauses it: a wrapper in another process never sends it before the reset', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const p = prefix('wpause')
    const shared = kind === 'memory' ? store(clock) : null
    const keys = keysOf()
    /** One process: its own store connection, Quota, Guard and wrapped client. */
    const proc = () => {
      const s = shared ?? store(clock)
      const quota = new Quota({ store: s, prefix: `${p}q:`, now: clock.now, bufferMs: 0, rpmWindow: true })
      const guard = new Guard({ store: s, prefix: `${p}g:`, limits: [{ id: 'rpm', scope: 'all', requests: 100, per: '1m' }], routing: { quota, keys, scope: 'org' } })
      return guardOpenAI(new OpenAI({ apiKey: 'test', baseURL: `http://127.0.0.1:${fake.port}/v1`, maxRetries: 0 }), guard, { now: clock.now })
    }
    const first = proc()
    const second = proc()
    const auth = () => fake.received.at(-1)!.headers.authorization
    fake.rateLimit(1, { 'retry-after': '30' })
    await expect(first.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({ status: 429 })
    expect(auth()).toBe('Bearer sk-a')
    expect(first.tollgate.stats()).toMatchObject({ providerExhausted: 1, keysPaused: 1, pauseErrors: 0 })
    // The other process has seen no 429 and keeps no map of its own: the store says key-a waits.
    await second.chat.completions.create({ model: MODEL, messages })
    expect(auth()).toBe('Bearer sk-b')
    expect(second.tollgate.stats()).toMatchObject({ providerExhausted: 0, exhausted: {} })
    clock.advance(30_000)
    await second.chat.completions.create({ model: MODEL, messages })
    expect(auth()).toBe('Bearer sk-a')
  })

  it('a success saying a key has nothing left pauses it until the reset the headers give', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const p = prefix('wpause0')
    const shared = kind === 'memory' ? store(clock) : null
    const keys = [keysOf()[0]]
    const proc = () => {
      const s = shared ?? store(clock)
      const quota = new Quota({ store: s, prefix: `${p}q:`, now: clock.now, bufferMs: 0, rpmWindow: true })
      const guard = new Guard({ store: s, prefix: `${p}g:`, limits: [], routing: { quota, keys, scope: 'org' } })
      return guardOpenAI(new OpenAI({ apiKey: 'test', baseURL: `http://127.0.0.1:${fake.port}/v1`, maxRetries: 0 }), guard, { now: clock.now })
    }
    const first = proc()
    const second = proc()
    fake.headers = { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '2s' }
    try {
      await first.chat.completions.create({ model: MODEL, messages })
    } finally {
      fake.headers = {}
    }
    const before = fake.requests.length
    await expect(second.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({ code: codes.LIMITED, limit: 'keys', retryAfterMs: 2_000 })
    expect(fake.requests.length).toBe(before)
    clock.advance(2_000)
    await second.chat.completions.create({ model: MODEL, messages })
    expect(fake.requests.length).toBe(before + 1)
  })
})

forEachStore('guard.reset: a scope cleared on every limit, for every process', ({ kind, store, prefix }) => {
  it("another Guard's reset clears the usage this one counted; other scopes keep theirs", async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const p = prefix('greset')
    const shared = kind === 'memory' ? store(clock) : null
    const limits = [
      { id: 'rpm', scope: (c: any) => c.user, requests: 5, per: '1m' as const },
      { id: 'tokens', scope: (c: any) => c.user, tokens: 10_000, per: 'day' as const },
      { id: 'org', scope: () => 'acme', requests: 100, per: '1h' as const },
    ]
    const one = new Guard({ store: shared ?? store(clock), prefix: p, limits })
    const two = new Guard({ store: shared ?? store(clock), prefix: p, limits })
    for (const user of ['u1', 'u1', 'u2']) {
      const d = await one.acquire({ user }, { model: MODEL, tokens: 100, maxTokens: 10 })
      await d.settle({ inputTokens: 100, outputTokens: 10 })
    }
    const held = await one.acquire({ user: 'u1' }, { model: MODEL, tokens: 100, maxTokens: 10 })
    expect((await two.peek({ user: 'u1' })).remaining).toEqual({ rpm: 2, tokens: 10_000 - 330, org: 96 })
    await two.reset({ user: 'u1' })
    // Every limit that applies to u1 is cleared — the org's shared meter too, since u1's ctx names it.
    expect((await one.peek({ user: 'u1' })).remaining).toEqual({ rpm: 5, tokens: 10_000, org: 100 })
    expect((await one.peek({ user: 'u2' })).remaining).toMatchObject({ rpm: 4, tokens: 10_000 - 110 })
    // A decision made before the reset ends harmlessly.
    await held.settle({ inputTokens: 100, outputTokens: 10 })
    expect((await one.peek({ user: 'u1' })).remaining).toEqual({ rpm: 5, tokens: 10_000, org: 100 })
    // A scope function that throws is a typed error, nothing cleared.
    await expect(one.reset(null)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    expect((await one.peek({ user: 'u2' })).remaining).toMatchObject({ rpm: 4 })
  })
})

describe("rateLimitStore's resetKey across processes (Redis)", () => {
  it('a store in another process clears the key for all', async () => {
    const prefix = `t:erl-reset:${Math.random().toString(36).slice(2, 8)}:`
    const a = new RedisStore(redisUrl())
    const b = new RedisStore(redisUrl())
    try {
      const one = rateLimitStore({ store: a, prefix })
      const two = rateLimitStore({ store: b, prefix })
      for (const s of [one, two]) s.init({ windowMs: 60_000, limit: 2 } as any)
      expect((await one.increment('client')).totalHits).toBe(1)
      expect((await one.increment('client')).totalHits).toBe(2)
      expect((await two.increment('client')).totalHits).toBe(3) // refused: limit + 1
      await two.resetKey('client')
      expect(await one.get('client')).toMatchObject({ totalHits: 0 })
      expect((await one.increment('client')).totalHits).toBe(1)
      for (const s of [one, two]) s.shutdown()
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})

forEachStore('wait on acquire: a short refusal waits instead', ({ kind, store, prefix }) => {
  it('guard.acquire with wait is admitted when capacity comes back, in this process or another', async () => {
    const clock = new Clock()
    const p = prefix('gwait')
    const shared = kind === 'memory' ? store(clock) : null
    const limits = [{ id: 'one', scope: 'all', concurrent: 1 }]
    const one = new Guard({ store: shared ?? store(clock), prefix: p, limits })
    const two = new Guard({ store: shared ?? store(clock), prefix: p, limits })
    const held = await one.acquire({}, { model: MODEL, tokens: 1 })
    expect((await two.acquire({}, { model: MODEL, tokens: 1 })).ok).toBe(false)
    // On a MemoryStore both guards share the store but not the wake-ups: the waiter looks again
    // when its own process frees capacity, or every 50 ms on Redis. Here the waiter is `one`.
    const waiting = one.acquire({}, { model: MODEL, tokens: 1 }, { wait: { maxMs: 60_000 } })
    await held.cancel()
    const d = await waiting
    expect(d.ok).toBe(true)
    await d.cancel()
    if (kind !== 'memory') {
      // Freed by another process: seen by polling.
      const h2 = await one.acquire({}, { model: MODEL, tokens: 1 })
      const w2 = two.acquire({}, { model: MODEL, tokens: 1 }, { wait: { maxMs: 60_000 } })
      await h2.cancel()
      expect((await w2).ok).toBe(true)
    }
    await expect(one.acquire({}, { model: MODEL }, { wait: { maxMs: -1 } })).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(one.acquire({}, { model: MODEL }, { wiat: {} } as any)).rejects.toMatchObject({ code: codes.UNKNOWN_OPTION })
  })
})

describe('waitMs in the wrappers and the HTTP middleware', () => {
  it('guardOpenAI: a call refused by a concurrency limit waits for the stream in flight to end', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: [{ id: 'one', scope: 'all', concurrent: 1 }] })
    const ai = guardOpenAI(fake.openai, guard, { waitMs: 60_000 })
    const bare = guardOpenAI(fake.openai, guard)
    const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true })
    await expect(bare.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({ code: codes.LIMITED, limit: 'one' })
    const waiting = ai.chat.completions.create({ model: MODEL, messages })
    for await (const _ of stream);
    expect((await waiting).choices[0].message.content).toBe('Hello!')
    // The request's own signal stops the wait: the refusal is answered.
    const s2 = await ai.chat.completions.create({ model: MODEL, messages, stream: true })
    const ac = new AbortController()
    const stopped = ai.chat.completions.create({ model: MODEL, messages }, { signal: ac.signal })
    ac.abort()
    await expect(stopped).rejects.toMatchObject({ code: codes.LIMITED })
    for await (const _ of s2);
    expect(() => guardOpenAI(fake.openai, guard, { waitMs: -5 })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
  })

  it('expressGuard: with waitMs a request waits for the one in flight instead of a 429', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: [{ id: 'one', scope: (c: any) => c.key, concurrent: 1 }] })
    let release = () => {}
    const gate = new Promise<void>((r) => (release = r))
    const app = express()
    app.use(expressGuard(guard, { key: () => 'client', waitMs: 60_000 }))
    app.get('/slow', async (_req, res) => {
      await gate
      res.send('slow')
    })
    app.get('/', (_req, res) => res.send('ok'))
    const server = http.createServer(app)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const slow = fetch(`${url}/slow`)
      // The slow request holds the slot before the next one asks.
      await until(async () => (await guard.peek({ key: 'client' })).remaining.one === 0)
      const waiting = fetch(url)
      release()
      expect((await slow).status).toBe(200)
      const r = await waiting
      expect(r.status).toBe(200)
      expect(await r.text()).toBe('ok')
    } finally {
      await new Promise((r) => server.close(r))
    }
  })
})

async function until(cond: () => Promise<boolean>) {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error('condition never met')
}
