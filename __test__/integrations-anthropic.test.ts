// tollgate/anthropic: the real `@anthropic-ai/sdk` client on the local fake provider, through a
// Guard: messages.create (streamed or not) and messages.stream settle exactly what the provider
// reported, cache reads and writes priced; a refused call never reaches the server.
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CostTracker, Guard, MemoryStore, Quota, codes, costOf, countMessageTokens, countTokens } from '../lib/index.js'
import { guardAnthropic, SUPPORTED_ANTHROPIC_VERSIONS } from '../lib/integrations/anthropic.js'
import { ANTHROPIC_USAGE, startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'
import { Clock } from './helpers/stores.js'

const MODEL = 'claude-haiku-4-5'
const TPM = 100_000
const system = 'You are terse.'
const messages = [{ role: 'user' as const, content: 'Hello, how do I enable 2FA?' }]
const estimate = countMessageTokens([{ role: 'system', content: system }, ...messages], MODEL, { fallback: 'o200k_base' })
/** 100 plain + 2,000 cache reads + 500 cache writes in, 700 out. */
const TOKENS = 3_300
const COST = costOf(ANTHROPIC_USAGE, MODEL)

let fake: FakeProvider
beforeAll(async () => {
  fake = await startFakeProvider()
})
afterAll(() => fake.close())

function setup(opts: { rpm?: number; client?: Anthropic } = {}) {
  const clock = new Clock(Date.UTC(2026, 5, 1))
  const tracker = new CostTracker(new MemoryStore({ now: clock.now }))
  const guard = new Guard({
    store: new MemoryStore({ now: clock.now }),
    tracker,
    limits: [
      { id: 'tpm', scope: (c: any) => c.user, tokens: TPM, per: '1m' },
      { id: 'usd', scope: (c: any) => c.user, usd: 1, per: 'month' },
      { id: 'rpm', scope: (c: any) => c.user, requests: opts.rpm ?? 100, per: '1m' },
    ],
  })
  const claude = guardAnthropic(opts.client ?? fake.anthropic, guard, { now: clock.now }).withContext({ user: 'u1' })
  const left = async () => (await guard.peek({ user: 'u1' })).remaining
  const spent = async () => (await tracker.totals({ tags: false })).daily.spent
  return { guard, claude, left, spent, clock }
}

describe('guardAnthropic', () => {
  it('settles a message with its usage, cache reads and writes priced', async () => {
    const { claude, left, spent } = setup()
    const msg = await claude.messages.create({ model: MODEL, system, messages, max_tokens: 1_000 })
    expect(msg.content[0]).toMatchObject({ type: 'text', text: 'Hello!' })
    expect(await left()).toEqual({ tpm: TPM - TOKENS, usd: 1 - COST, rpm: 99 })
    expect(await spent()).toBe(COST)
    // cache reads are cheaper than plain input, cache writes dearer: both priced as such
    expect(COST).not.toBe(costOf({ inputTokens: 2_600, outputTokens: 700 }, MODEL))
  })

  it('settles messages.create({ stream: true }) from message_start and message_delta', async () => {
    const { claude, left, spent } = setup()
    const stream = await claude.messages.create({ model: MODEL, messages, max_tokens: 1_000, stream: true })
    const types: string[] = []
    for await (const e of stream) types.push(e.type)
    expect(types).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    expect((await left()).tpm).toBe(TPM - TOKENS)
    expect(await spent()).toBe(COST)
  })

  it('settles messages.stream() before finalMessage() resolves', async () => {
    const { claude, left, spent } = setup()
    const stream = claude.messages.stream({ model: MODEL, messages, max_tokens: 1_000 })
    const texts: string[] = []
    stream.on('text', (t) => texts.push(t))
    const msg = await stream.finalMessage()
    expect(texts).toEqual(['Hello!'])
    expect(msg.usage.output_tokens).toBe(700)
    expect((await left()).tpm).toBe(TPM - TOKENS)
    expect(await spent()).toBe(COST)
  })

  it('an aborted stream settles the input of message_start and the output read', async () => {
    const { claude, left } = setup()
    const stream = await claude.messages.create({ model: MODEL, messages, max_tokens: 1_000, stream: true })
    for await (const e of stream) if (e.type === 'content_block_delta') break
    expect((await left()).tpm).toBe(TPM - 2_600 - Math.max(1, countTokens('Hello!', 'o200k_base')))
    expect(claude.tollgate.stats()).toMatchObject({ aborted: 1, settled: 1 })
  })

  it('a stream cut before message_delta settles what message_start said and the text read', async () => {
    const { claude, left } = setup()
    fake.next({ disconnectAfter: 4 })
    const stream = claude.messages.stream({ model: MODEL, messages, max_tokens: 1_000 })
    await expect(stream.finalMessage()).rejects.toThrow()
    expect((await left()).tpm).toBe(TPM - 2_600 - Math.max(1, countTokens('Hello!', 'o200k_base')))
  })

  it('a message without usage leaves the estimate standing, counted in stats', async () => {
    const { claude, left } = setup()
    fake.next({ omitUsage: true })
    await claude.messages.create({ model: MODEL, system, messages, max_tokens: 300 })
    expect((await left()).tpm).toBe(TPM - estimate - 300)
    expect(claude.tollgate.stats().noUsage).toBe(1)
  })

  it('refused: never reaches the server, charges nothing (messages.stream too)', async () => {
    const { claude, left } = setup({ rpm: 1 })
    await claude.messages.create({ model: MODEL, messages, max_tokens: 10 })
    const before = fake.requests.length
    const after = await left()
    await expect(claude.messages.create({ model: MODEL, messages, max_tokens: 10 })).rejects.toMatchObject({ code: codes.LIMITED, limit: 'rpm' })
    // MessageStream wraps errors that are not the SDK's: the refusal is the cause
    await expect(claude.messages.stream({ model: MODEL, messages, max_tokens: 10 }).finalMessage()).rejects.toMatchObject({ cause: { code: codes.LIMITED, limit: 'rpm' } })
    expect(fake.requests.length).toBe(before)
    expect(await left()).toEqual(after)
  })

  it('a 429 with anthropic-ratelimit-* headers: nothing charged, the key waits until the reset', async () => {
    const client = new Anthropic({ apiKey: 'test', baseURL: `http://127.0.0.1:${fake.port}`, maxRetries: 0 })
    const { claude, left, clock } = setup({ client })
    const full = await left()
    const reset = new Date(clock.t + 45_000).toISOString()
    fake.rateLimit(1, { 'anthropic-ratelimit-input-tokens-limit': '30000', 'anthropic-ratelimit-input-tokens-remaining': '0', 'anthropic-ratelimit-input-tokens-reset': reset, 'anthropic-ratelimit-requests-reset': 'never' })
    const err: any = await claude.messages.create({ model: MODEL, messages, max_tokens: 10 }).catch((e) => e)
    expect(err.status).toBe(429)
    expect(await left()).toEqual(full)
    const before = fake.requests.length
    await expect(claude.messages.create({ model: MODEL, messages, max_tokens: 10 })).rejects.toMatchObject({ code: codes.LIMITED, limit: 'provider', retryAfterMs: 45_000 })
    expect(fake.requests.length).toBe(before)
    expect(claude.tollgate.stats()).toMatchObject({ headersIgnored: 1, providerRefused: 1 })
    clock.advance(45_000)
    await claude.messages.create({ model: MODEL, messages, max_tokens: 10 })
    expect(fake.requests.length).toBe(before + 1)
  })

  it('calls with the routed key as x-api-key', async () => {
    const quota = new Quota({ rpmWindow: true })
    const guard = new Guard({ limits: [], routing: { quota, keys: [{ id: 'k1', apiKey: 'sk-ant-1', rpm: 100, tpm: 1_000_000, rpd: 1_000 }] } })
    const claude = guardAnthropic(fake.anthropic, guard)
    await claude.messages.create({ model: MODEL, messages, max_tokens: 10 })
    expect(fake.received.at(-1)!.headers['x-api-key']).toBe('sk-ant-1')
    // a key without a secret is an error, and the call is not made
    const bare = guardAnthropic(fake.anthropic, new Guard({ limits: [], routing: { quota: new Quota(), keys: [{ id: 'k2', rpm: 100, tpm: 1_000_000, rpd: 1_000 }] } }))
    const before = fake.requests.length
    await expect(bare.messages.create({ model: MODEL, messages, max_tokens: 10 })).rejects.toMatchObject({ code: codes.INVALID_ARG })
    expect(fake.requests.length).toBe(before)
  })

  it('refuses a client of an unsupported major version at wrap time', () => {
    const guard = new Guard({ limits: [] })
    const old = Object.create(fake.anthropic, { getUserAgent: { value: () => 'Anthropic/JS 0.52.0' } })
    expect(() => guardAnthropic(old, guard)).toThrow(/supports @anthropic-ai\/sdk 1\.x; this client is @anthropic-ai\/sdk 0\.x/)
    expect(SUPPORTED_ANTHROPIC_VERSIONS).toEqual([1])
    expect(() => guardAnthropic(fake.openai as any, guard)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
  })
})
