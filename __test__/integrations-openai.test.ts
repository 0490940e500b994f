// tollgate/openai: the real `openai` client on the local fake provider, through a Guard. Every
// path settles exactly what the provider reported (checked with guard.peek and a CostTracker);
// a refused call never reaches the server and charges nothing.
import { AsyncLocalStorage } from 'node:async_hooks'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CostTracker, Guard, MemoryStore, Quota, RedisStore, ResponseCache, codes, costOf, countMessageTokens, countTokens } from '../lib/index.js'
import { guardOpenAI, SUPPORTED_OPENAI_VERSIONS } from '../lib/integrations/openai.js'
import { CHAT_USAGE, RESPONSES_USAGE, startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'
import { Clock, redisUrl } from './helpers/stores.js'

const MODEL = 'gpt-4o-mini'
const TPM = 100_000
const messages = [{ role: 'user' as const, content: 'Hello, how do I enable 2FA?' }]
const estimate = countMessageTokens(messages, MODEL)

let fake: FakeProvider
beforeAll(async () => {
  fake = await startFakeProvider()
})
afterAll(() => fake.close())

/** A guard (tokens per minute, dollars per month, requests per minute) with a tracker, on `store`. */
function setup(opts: { rpm?: number; store?: any; cache?: boolean; clock?: Clock } = {}) {
  const clock = opts.clock ?? new Clock(Date.UTC(2026, 5, 1))
  const store = opts.store ?? new MemoryStore({ now: clock.now })
  const tracker = new CostTracker(new MemoryStore({ now: clock.now }))
  const guard = new Guard({
    store,
    tracker,
    prefix: `oa:${Math.random()}:`,
    limits: [
      { id: 'tpm', scope: (c: any) => c.user, tokens: TPM, per: '1m' },
      { id: 'usd', scope: (c: any) => c.user, usd: 1, per: 'month' },
      { id: 'rpm', scope: (c: any) => c.user, requests: opts.rpm ?? 100, per: '1m' },
    ],
    ...(opts.cache ? { cache: new ResponseCache(new MemoryStore({ now: clock.now })) } : {}),
  })
  const ai = guardOpenAI(fake.openai, guard, { now: clock.now }).withContext({ user: 'u1' })
  const left = async () => (await guard.peek({ user: 'u1' })).remaining
  const spent = async () => (await tracker.totals({ tags: false })).daily.spent
  return { guard, ai, left, spent, clock }
}

describe('guardOpenAI: chat.completions.create', () => {
  it('settles a completion with its usage: tokens, dollars and the tracker', async () => {
    const { ai, left, spent } = setup()
    const before = fake.requests.length
    const completion = await ai.chat.completions.create({ model: MODEL, messages, max_tokens: 500 })
    expect(completion.choices[0].message.content).toBe('Hello!')
    expect(fake.requests.length).toBe(before + 1)
    const cost = costOf(CHAT_USAGE, MODEL)
    expect(await left()).toEqual({ tpm: TPM - 1_500, usd: 1 - cost, rpm: 99 })
    expect(await spent()).toBe(cost)
    expect(ai.tollgate.stats()).toMatchObject({ calls: 1, settled: 1, refused: 0 })
  })

  it('streams: asks for the usage chunk, hides it from a caller who did not ask, settles at the end', async () => {
    const { ai, left, spent } = setup()
    const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true })
    const chunks: any[] = []
    for await (const chunk of stream) chunks.push(chunk)
    expect(fake.received.at(-1)!.body.stream_options).toEqual({ include_usage: true })
    expect(chunks).toHaveLength(3)
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true)
    expect((await left()).tpm).toBe(TPM - 1_500)
    expect(await spent()).toBe(costOf(CHAT_USAGE, MODEL))
  })

  it("passes the usage chunk through when the caller asked for it", async () => {
    const { ai, left } = setup()
    const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true, stream_options: { include_usage: true } })
    const chunks: any[] = []
    for await (const chunk of stream) chunks.push(chunk)
    expect(chunks).toHaveLength(4)
    expect(chunks[3].usage).toEqual(CHAT_USAGE)
    expect((await left()).tpm).toBe(TPM - 1_500)
  })

  it("a stream read through the SDK's own tee() and toReadableStream() settles once, at the end", async () => {
    const { ai, left } = setup()
    const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true })
    const [a, b] = stream.tee()
    const read = async (s: AsyncIterable<any>) => {
      const out: any[] = []
      for await (const c of s) out.push(c)
      return out
    }
    const [ca, cb] = await Promise.all([read(a), read(b)])
    expect(ca).toHaveLength(3)
    expect(cb).toEqual(ca)
    expect((await left()).tpm).toBe(TPM - 1_500)
    expect(ai.tollgate.stats()).toMatchObject({ settled: 1, aborted: 0 })

    const again = await ai.chat.completions.create({ model: MODEL, messages, stream: true })
    const reader = again.toReadableStream().getReader()
    let bytes = 0
    for (let r = await reader.read(); !r.done; r = await reader.read()) bytes += r.value.length
    expect(bytes).toBeGreaterThan(0)
    expect((await left()).tpm).toBe(TPM - 3_000)
    expect(ai.tollgate.stats()).toMatchObject({ settled: 2, aborted: 0 })
  })

  it('refused: throws ERR_TOLLGATE_LIMITED with the decision, never reaches the server, charges nothing', async () => {
    const { ai, left, spent } = setup({ rpm: 1 })
    await ai.chat.completions.create({ model: MODEL, messages })
    const before = fake.requests.length
    const after = await left()
    const err: any = await ai.chat.completions.create({ model: MODEL, messages }).catch((e) => e)
    expect(err.code).toBe(codes.LIMITED)
    expect(err.limit).toBe('rpm')
    expect(err.decision).toMatchObject({ ok: false, limit: 'rpm' })
    expect(err.retryAfterMs).toBeGreaterThan(0)
    // a refused stream too
    await expect(ai.chat.completions.create({ model: MODEL, messages, stream: true })).rejects.toMatchObject({ code: codes.LIMITED })
    expect(fake.requests.length).toBe(before)
    expect(await left()).toEqual(after)
    expect(await spent()).toBe(costOf(CHAT_USAGE, MODEL))
    expect(ai.tollgate.stats().refused).toBe(2)
  })

  it('answers a repeated request from the cache in the SDK shape, with nothing charged', async () => {
    const { ai, left } = setup({ cache: true })
    const first = await ai.chat.completions.create({ model: MODEL, messages, temperature: 0 })
    const before = fake.requests.length
    const after = await left()
    const { data, response } = await ai.chat.completions.create({ model: MODEL, messages, temperature: 0 }).withResponse()
    expect(data.choices[0].message.content).toBe(first.choices[0].message.content)
    expect(data.usage).toEqual(CHAT_USAGE)
    expect(response.headers.get('x-tollgate-cache')).toBe('hit')
    expect(fake.requests.length).toBe(before)
    expect(await left()).toEqual(after)
    // another temperature is another request
    await ai.chat.completions.create({ model: MODEL, messages, temperature: 1 })
    expect(fake.requests.length).toBe(before + 1)
    expect(ai.tollgate.stats().cached).toBe(1)
  })

  it('an aborted stream settles what was used: the input estimate and the output read', async () => {
    const { ai, left } = setup()
    const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true, max_tokens: 800 })
    let n = 0
    for await (const _ of stream) if (++n === 2) break // the reader stops after 'Hello'
    expect((await left()).tpm).toBe(TPM - estimate - countTokens('Hello', MODEL))
    expect(ai.tollgate.stats()).toMatchObject({ aborted: 1, settled: 1, noUsage: 0 })
  })

  it('a stream cut mid-way settles what was used, and the error reaches the reader', async () => {
    const { ai, left } = setup()
    fake.next({ disconnectAfter: 2 })
    const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true, max_tokens: 800 })
    const seen: string[] = []
    await expect(
      (async () => {
        for await (const c of stream) seen.push(c.choices[0]?.delta?.content ?? '')
      })(),
    ).rejects.toThrow()
    expect(seen).toEqual(['', 'Hello'])
    expect((await left()).tpm).toBe(TPM - estimate - countTokens('Hello', MODEL))
    expect(ai.tollgate.stats()).toMatchObject({ aborted: 1, settled: 1 })
  })

  it('an answer without usage leaves the estimate standing, counted in stats', async () => {
    const { ai, left } = setup()
    fake.next({ omitUsage: true })
    await ai.chat.completions.create({ model: MODEL, messages, max_tokens: 500 })
    expect((await left()).tpm).toBe(TPM - estimate - 500)
    fake.next({ omitUsage: true })
    const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true, max_tokens: 400 })
    for await (const _ of stream);
    expect((await left()).tpm).toBe(TPM - 2 * estimate - 900)
    expect(ai.tollgate.stats().noUsage).toBe(2)
  })

  it('the context comes from withContext or from options.context (AsyncLocalStorage)', async () => {
    const { guard } = setup({ rpm: 1 })
    const als = new AsyncLocalStorage<{ user: string }>()
    const ai = guardOpenAI(fake.openai, guard, { context: () => als.getStore() })
    await als.run({ user: 'a' }, () => ai.chat.completions.create({ model: MODEL, messages }))
    await als.run({ user: 'b' }, () => ai.chat.completions.create({ model: MODEL, messages }))
    await expect(als.run({ user: 'a' }, () => ai.chat.completions.create({ model: MODEL, messages }))).rejects.toMatchObject({ code: codes.LIMITED })
    await expect(ai.withContext({ user: 'b' }).chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({ code: codes.LIMITED })
    expect((await guard.peek({ user: 'c' })).remaining.rpm).toBe(1)
    // the rest of the client is the client's own
    expect(ai.models).toBe(fake.openai.models)
  })

  it('withResponse() gives the raw response and request id, as the SDK does', async () => {
    const { ai } = setup()
    const { data, response, request_id } = await ai.chat.completions.create({ model: MODEL, messages }).withResponse()
    expect(data.usage).toEqual(CHAT_USAGE)
    expect(response.status).toBe(200)
    expect(request_id).toBeNull() // the fake server sends no x-request-id
    const raw = await ai.embeddings.create({ model: 'text-embedding-3-small', input: 'a b' }).asResponse()
    expect(raw.headers.get('content-type')).toBe('application/json')
  })

  it('records the cost with the tags of options.tags', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const tracker = new CostTracker(new MemoryStore({ now: clock.now }))
    const guard = new Guard({ store: new MemoryStore({ now: clock.now }), tracker, limits: [] })
    const ai = guardOpenAI(fake.openai, guard, { tags: (ctx: any, body: any) => ({ feature: ctx.feature, model: body.model }) })
    await ai.withContext({ feature: 'chat' }).chat.completions.create({ model: MODEL, messages })
    const totals = await tracker.totals()
    expect(totals.daily.byTag).toEqual({ feature: { chat: costOf(CHAT_USAGE, MODEL) }, model: { [MODEL]: costOf(CHAT_USAGE, MODEL) } })
  })

  it('feedback: false sends every call, whatever the headers said', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const { guard } = setup({ clock })
    const ai = guardOpenAI(fake.openai, guard, { now: clock.now, feedback: false }).withContext({ user: 'u1' })
    fake.headers = { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m0s' }
    try {
      await ai.chat.completions.create({ model: MODEL, messages })
    } finally {
      fake.headers = {}
    }
    const before = fake.requests.length
    await ai.chat.completions.create({ model: MODEL, messages })
    expect(fake.requests.length).toBe(before + 1)
    expect(ai.tollgate.stats()).toMatchObject({ providerExhausted: 0, exhausted: {} })
  })
})

describe('guardOpenAI: responses.create and embeddings.create', () => {
  it('settles a Responses API answer, streamed or not', async () => {
    const { ai, left, spent } = setup()
    const r = await ai.responses.create({ model: MODEL, input: 'Hi', max_output_tokens: 1_000 })
    expect(r.output_text).toBe('Hello!')
    expect((await left()).tpm).toBe(TPM - 2_900)
    const stream = await ai.responses.create({ model: MODEL, input: 'Hi', stream: true })
    const types: string[] = []
    for await (const e of stream) types.push(e.type)
    expect(types.at(-1)).toBe('response.completed')
    expect((await left()).tpm).toBe(TPM - 5_800)
    expect(await spent()).toBe(2 * costOf(RESPONSES_USAGE, MODEL))
  })

  it('an aborted Responses stream settles the input estimate and the text read', async () => {
    const { ai, left } = setup()
    const stream = await ai.responses.create({ model: MODEL, input: 'Hi', stream: true, max_output_tokens: 500 })
    for await (const e of stream) if (e.type === 'response.output_text.delta') break
    expect((await left()).tpm).toBe(TPM - countMessageTokens([{ role: 'user', content: 'Hi' }], MODEL) - countTokens('Hello!', MODEL))
    expect(ai.tollgate.stats()).toMatchObject({ aborted: 1, noUsage: 0 })
  })

  it('settles embeddings with their prompt tokens', async () => {
    const { ai, left } = setup()
    const e = await ai.embeddings.create({ model: 'text-embedding-3-small', input: ['one two', 'three'] })
    expect(e.data).toHaveLength(2)
    expect((await left()).tpm).toBe(TPM - 3)
  })
})

describe('guardOpenAI: keys and provider feedback', () => {
  it('calls with the routed key, and stops routing to a key the provider says is exhausted', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const store = new MemoryStore({ now: clock.now })
    const quota = new Quota({ now: clock.now, bufferMs: 0, rpmWindow: true })
    const keys = [{ id: 'key-a', apiKey: 'sk-a', rpm: 1_000, tpm: 1_000_000, rpd: 10_000 }]
    const guard = new Guard({ store, limits: [{ id: 'rpm', scope: 'all', requests: 100, per: '1m' }], routing: { quota, keys } })
    const ai = guardOpenAI(fake.openai, guard, { now: clock.now })
    fake.headers = { 'x-ratelimit-limit-requests': '500', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1.5s' }
    try {
      await ai.chat.completions.create({ model: MODEL, messages })
    } finally {
      fake.headers = {}
    }
    expect(fake.received.at(-1)!.headers.authorization).toBe('Bearer sk-a')
    const before = fake.requests.length
    // The key is paused in the Quota: the guard's routing refuses it until the reset.
    const err: any = await ai.chat.completions.create({ model: MODEL, messages }).catch((e) => e)
    expect(err).toMatchObject({ code: codes.LIMITED, limit: 'keys', retryAfterMs: 1_500, decision: { reason: 'paused' } })
    expect(fake.requests.length).toBe(before)
    // the refused call gave back what the guard took
    expect((await guard.peek({})).remaining.rpm).toBe(99)
    clock.advance(1_500)
    await ai.chat.completions.create({ model: MODEL, messages })
    expect(fake.requests.length).toBe(before + 1)
    expect(ai.tollgate.stats()).toMatchObject({ providerExhausted: 1, keysPaused: 1, pauseErrors: 0 })
  })

  it('routes around an exhausted key when the routing keys pass through tollgate.available', async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const quota = new Quota({ now: clock.now, bufferMs: 0, rpmWindow: true })
    const keys = [
      { id: 'key-a', apiKey: 'sk-a', rpm: 1_000, tpm: 1_000_000, rpd: 10_000, priority: 10 },
      { id: 'key-b', apiKey: 'sk-b', rpm: 1_000, tpm: 1_000_000, rpd: 10_000 },
    ]
    let ai: any = null
    const guard = new Guard({ store: new MemoryStore({ now: clock.now }), limits: [], routing: { quota, keys: () => ai.tollgate.available(keys) } })
    ai = guardOpenAI(fake.openai, guard, { now: clock.now })
    const auth = () => fake.received.at(-1)!.headers.authorization
    await ai.chat.completions.create({ model: MODEL, messages })
    expect(auth()).toBe('Bearer sk-a')
    fake.rateLimit(1, { 'retry-after': '30' })
    const client = guardOpenAI(new OpenAI({ apiKey: 'test', baseURL: `http://127.0.0.1:${fake.port}/v1`, maxRetries: 0 }), guard, { now: clock.now })
    ai = client
    await expect(ai.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({ status: 429 })
    expect(ai.tollgate.stats().exhausted).toEqual({ 'key-a': clock.t + 30_000 })
    await ai.chat.completions.create({ model: MODEL, messages })
    expect(auth()).toBe('Bearer sk-b')
    clock.advance(30_000)
    await ai.chat.completions.create({ model: MODEL, messages })
    expect(auth()).toBe('Bearer sk-a')
    expect(ai.tollgate.available(keys)).toEqual(keys)
  })

  it("a 429 charges nothing, its headers are read, and the client's key waits its retry-after", async () => {
    const clock = new Clock(Date.UTC(2026, 5, 1))
    const { guard, left } = setup({ clock })
    const client = new OpenAI({ apiKey: 'test', baseURL: `http://127.0.0.1:${fake.port}/v1`, maxRetries: 0 })
    const ai = guardOpenAI(client, guard, { now: clock.now }).withContext({ user: 'u1' })
    const full = await left()
    fake.rateLimit(1, { 'retry-after': '20', 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s', 'x-ratelimit-reset-requests': 'soon' })
    const err: any = await ai.chat.completions.create({ model: MODEL, messages }).catch((e) => e)
    expect(err.status).toBe(429)
    expect(await left()).toEqual(full)
    const before = fake.requests.length
    await expect(ai.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({ code: codes.LIMITED, limit: 'provider', retryAfterMs: 20_000 })
    expect(fake.requests.length).toBe(before)
    expect(ai.tollgate.stats()).toMatchObject({ headersIgnored: 1, cancelled: 1 })
    clock.advance(20_000)
    await ai.chat.completions.create({ model: MODEL, messages })
    expect(fake.requests.length).toBe(before + 1)
  })
})

describe('guardOpenAI: bad input', () => {
  it('refuses a client of an unsupported major version at wrap time, naming the supported ones', () => {
    const guard = new Guard({ limits: [] })
    const old = Object.create(fake.openai, { getUserAgent: { value: () => 'OpenAI/JS 4.104.0' } })
    expect(() => guardOpenAI(old, guard)).toThrow(/supports openai 7\.x; this client is openai 4\.x/)
    expect(SUPPORTED_OPENAI_VERSIONS).toEqual([7])
    expect(() => guardOpenAI({} as any, guard)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => guardOpenAI(fake.openai, {} as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => guardOpenAI(fake.openai, guard, { contxt: () => ({}) } as any)).toThrow(expect.objectContaining({ code: codes.UNKNOWN_OPTION }))
  })

  it("a call without max_tokens is estimated with the guard's defaultMaxTokens", async () => {
    const guard = new Guard({ store: new MemoryStore(), defaultMaxTokens: 50, limits: [{ id: 'tokens', scope: 'all', tokens: estimate + 50, per: '1m' }] })
    const ai = guardOpenAI(fake.openai, guard)
    // admitted: estimate + 50 fits exactly (the SDK's answer then uses more, and is charged)
    await expect(ai.chat.completions.create({ model: MODEL, messages })).resolves.toMatchObject({ usage: CHAT_USAGE })
    const tight = new Guard({ store: new MemoryStore(), defaultMaxTokens: 50, limits: [{ id: 'tokens', scope: 'all', tokens: estimate + 49, per: '1m' }] })
    await expect(guardOpenAI(fake.openai, tight).chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({ code: codes.LIMITED, limit: 'tokens' })
  })

  it('a request without messages is rejected before anything is counted or sent', async () => {
    const { ai, left } = setup()
    const before = fake.requests.length
    const full = await left()
    await expect(ai.chat.completions.create({ model: MODEL } as any)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    expect(fake.requests.length).toBe(before)
    expect(await left()).toEqual(full)
  })
})

describe('guardOpenAI on Redis', () => {
  it('settles a streamed completion exactly', async () => {
    const store = new RedisStore(redisUrl())
    try {
      const { ai, left, spent } = setup({ store })
      const stream = await ai.chat.completions.create({ model: MODEL, messages, stream: true })
      for await (const _ of stream);
      await ai.chat.completions.create({ model: MODEL, messages })
      expect(await left()).toEqual({ tpm: TPM - 3_000, usd: 1 - 2 * costOf(CHAT_USAGE, MODEL), rpm: 98 })
      expect(await spent()).toBe(2 * costOf(CHAT_USAGE, MODEL))
    } finally {
      await store.close()
    }
  })
})


describe('entry points', () => {
  it('tollgate/openai and tollgate/anthropic load the same objects as ESM and CJS; tollgate alone loads no SDK', async () => {
    const { execFileSync } = await import('node:child_process')
    const script = `
      require('tollgate')
      const loaded = Object.keys(require.cache).filter((k) => /node_modules[\\\\/](openai|@anthropic-ai)[\\\\/]/.test(k))
      const cjs = [require('tollgate/openai').guardOpenAI, require('tollgate/anthropic').guardAnthropic]
      Promise.all([import('tollgate/openai'), import('tollgate/anthropic'), import('tollgate')]).then(([o, a, t]) => {
        console.log(JSON.stringify({ loaded, same: o.guardOpenAI === cjs[0] && a.guardAnthropic === cjs[1], rateLimitsFrom: typeof t.rateLimitsFrom }))
      })`
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: __dirname, encoding: 'utf8' }))
    expect(out).toEqual({ loaded: [], same: true, rateLimitsFrom: 'function' })
  })
})
