// Right money and right answers on real SDK responses (issue "what a newcomer hits in the first
// hour"). Responses come from the real `openai` and `@anthropic-ai/sdk` clients talking to a
// local fake provider (helpers/fake-provider.ts): non-streaming and streaming, both providers.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  catalogModels,
  codes,
  costOf,
  CostTracker,
  createLLMRateLimiter,
  estimateCost,
  MemoryStore,
  ModelTiers,
  priceOf,
  RateLimiter,
  RedisStore,
  ResponseCache,
  SemanticCache,
  SessionStore,
  streamUsage,
  TokenBudget,
  usageFrom,
  withRetry,
  type SemanticCacheStats,
  type Usage,
} from '../lib/index.js'
import { ANTHROPIC_USAGE, CHAT_USAGE, RESPONSES_USAGE, startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'
import { Clock, forEachStore } from './helpers/stores.js'

let fake: FakeProvider
beforeAll(async () => {
  fake = await startFakeProvider()
})
afterAll(() => fake.close())

const chatUsage: Usage = { inputTokens: 1_200, cachedInputTokens: 1_024, cacheWriteTokens: 0, outputTokens: 300, reasoningTokens: 0 }
const responsesUsage: Usage = { inputTokens: 2_000, cachedInputTokens: 1_024, cacheWriteTokens: 0, outputTokens: 900, reasoningTokens: 600 }
const anthropicUsage: Usage = { inputTokens: 2_600, cachedInputTokens: 2_000, cacheWriteTokens: 500, outputTokens: 700, reasoningTokens: 0 }

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const e of stream) out.push(e)
  return out
}

const shuffled = <T>(xs: T[], seed: number): T[] => {
  const a = xs.slice()
  let s = seed
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31
    const j = s % (i + 1)
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

describe('prices: exact ids and dated ids only (golden)', () => {
  const NEAR_MISSES: Array<[string, string]> = [
    ['gpt-4o-mni', 'gpt-4o-mini'],
    ['gpt-5-nanoo', 'gpt-5-nano'],
    ['gpt-4.1-nanno', 'gpt-4.1-nano'],
    ['o3-minii', 'o3-mini'],
    ['gpt-4o-minii', 'gpt-4o-mini'],
    ['claude-sonet-4-5', 'claude-sonnet-4-5'],
    ['gemini-2.5-flsh', 'gemini-2.5-flash'],
    ['text-embedding-3-smal', 'text-embedding-3-small'],
  ]

  it('every catalog id prices to its own entry, and so do its dated and versioned ids', () => {
    const ids = catalogModels()
    expect(ids.length).toBeGreaterThan(35)
    for (const id of ids) {
      const own = priceOf(id)
      expect(own, id).not.toBeNull()
      for (const dated of [`${id}-2099-01-31`, `${id}-20990131`, `${id}-latest`, `${id}@20990131`, `models/${id}`]) {
        expect(priceOf(dated), dated).toEqual(own)
      }
    }
  })

  it('no id extended by a word, a letter or a typo prices as another model', () => {
    const ids = catalogModels()
    for (const id of ids) {
      for (const miss of [`${id}x`, `${id}-mini`, `${id}-nano`, `${id}-preview`, `${id}-pro`, `${id}${id.at(-1)}`, id.slice(0, -1)]) {
        if (ids.includes(miss)) continue // a real model (gpt-4.1 + '-mini')
        expect(priceOf(miss), miss).toBeNull()
        expect(() => costOf({ inputTokens: 1, outputTokens: 1 }, miss), miss).toThrow(expect.objectContaining({ name: 'RangeError', code: codes.UNKNOWN_MODEL }))
      }
    }
  })

  it('near-miss ids are refused, naming the model that was meant first', () => {
    for (const [miss, meant] of NEAR_MISSES) {
      expect(priceOf(miss), miss).toBeNull()
      let err: any
      try {
        costOf({ inputTokens: 1_000, outputTokens: 1_000 }, miss)
      } catch (e) {
        err = e
      }
      expect(err, miss).toMatchObject({ name: 'RangeError', code: codes.UNKNOWN_MODEL })
      expect(err.suggestions[0], miss).toBe(meant)
      expect(err.message).toContain(`did you mean "${meant}"`)
      expect(() => estimateCost(10, 10, miss)).toThrow(expect.objectContaining({ code: codes.UNKNOWN_MODEL }))
    }
  })

  it("providers' dated and versioned ids find their family", () => {
    const same: Array<[string, string]> = [
      ['gpt-4o-2024-08-06', 'gpt-4o'],
      ['gpt-4o-mini-2024-07-18', 'gpt-4o-mini'],
      ['claude-sonnet-4-5-20250929', 'claude-sonnet-4-5'],
      ['claude-3-5-sonnet-v2@20241022', 'claude-3-5-sonnet'],
      ['us.anthropic.claude-sonnet-4-20250514-v1:0', 'claude-sonnet-4'],
      ['gemini-1.5-pro-002', 'gemini-1.5-pro'],
      ['gpt-3.5-turbo-0125', 'gpt-3.5-turbo'],
    ]
    for (const [dated, id] of same) expect(priceOf(dated), dated).toEqual(priceOf(id))
    // The first gpt-4o snapshot is priced as it was sold, not as today's gpt-4o.
    expect(priceOf('gpt-4o-2024-05-13')).toMatchObject({ input: 5, output: 15 })
  })

  it('CostTracker refuses a misspelt model instead of charging another rate', async () => {
    const t = new CostTracker(new MemoryStore(), { onAlert: () => {} })
    // Refused at reserve, before the call is made.
    await expect(t.reserve(0.01, { model: 'gpt-4o-mni' })).rejects.toMatchObject({ code: codes.UNKNOWN_MODEL, message: expect.stringContaining('did you mean "gpt-4o-mini"') })
    const { hold } = await t.reserve(0.01, { model: 'gpt-4o-mini' })
    await expect(t.settle(hold!, { usage: CHAT_USAGE }, { model: 'gpt-4o-mni' })).rejects.toMatchObject({ code: codes.UNKNOWN_MODEL })
    expect((await t.settle(hold!, { usage: CHAT_USAGE })).cost).toBe(0.0002832)
    await expect(t.recordUsage('gpt-5-nanoo', 1_000, 100)).rejects.toMatchObject({ code: codes.UNKNOWN_MODEL })
  })

  it('embedding models are priced (input only)', () => {
    expect(costOf({ inputTokens: 1_000_000, outputTokens: 0 }, 'text-embedding-3-small')).toBe(0.02)
    expect(costOf({ inputTokens: 1_000_000 }, 'text-embedding-3-large')).toBe(0.13)
    expect(costOf({ inputTokens: 1_000_000 }, 'text-embedding-ada-002')).toBe(0.1)
    expect(costOf({ inputTokens: 1_000_000 }, 'gemini-embedding-001')).toBe(0.15)
  })
})

describe('money: integer nano-dollars inside, exact decimals out', () => {
  it('no float noise: the issue’s 0.0000032999999999999997 is 0.0000033', () => {
    const cost = costOf({ inputTokens: 22 }, 'gpt-4o-mini')
    expect(cost).toBe(0.0000033)
    expect(String(cost)).toBe('0.0000033')
  })

  it('every amount is a whole number of nano-dollars and prints as its decimal', () => {
    let seed = 7
    const rnd = (n: number) => ((seed = (seed * 16_807) % 2_147_483_647), seed % n)
    for (const model of ['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4-5', 'gemini-1.5-flash', 'o3-mini']) {
      for (let i = 0; i < 300; i++) {
        const input = rnd(200_000)
        const u = { inputTokens: input, cachedInputTokens: rnd(input + 1), outputTokens: rnd(20_000) }
        const cost = costOf(u, model)
        const nano = Math.round(cost * 1e9)
        expect(nano / 1e9).toBe(cost)
        expect(String(cost).replace(/^0\.0*/, '').length).toBeLessThanOrEqual(String(nano).length)
        // Summing costs of calls in nano-dollars and converting once is exact.
      }
    }
  })

  it('one cached token of gemini-1.5-flash (18.75 nano-dollars) is rounded once, half up', () => {
    expect(costOf({ inputTokens: 1, cachedInputTokens: 1 }, 'gemini-1.5-flash')).toBe(0.000000019)
  })

  it('fractional token counts are refused', () => {
    expect(() => costOf({ inputTokens: 1.5 }, 'gpt-4o')).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
  })
})

describe('usageFrom on real SDK responses', () => {
  it('OpenAI chat completion', async () => {
    const completion = await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] })
    expect(usageFrom(completion)).toEqual(chatUsage)
    expect(usageFrom(completion.usage)).toEqual(chatUsage) // the bare usage object too
  })

  it('OpenAI Responses API', async () => {
    const response = await fake.openai.responses.create({ model: 'o3-mini', input: 'Hi' })
    expect(usageFrom(response)).toEqual(responsesUsage)
  })

  it('Anthropic message: input counts cache reads and writes', async () => {
    const message = await fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] })
    expect(message.usage).toMatchObject(ANTHROPIC_USAGE)
    expect(usageFrom(message)).toEqual(anthropicUsage)
  })

  it('per chunk kind: OpenAI chat chunks carry usage only on the last one', async () => {
    const chunks = await collect(await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [], stream: true, stream_options: { include_usage: true } }))
    expect(chunks.map((c) => usageFrom(c))).toEqual([null, null, null, chatUsage])
    const bare = await collect(await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [], stream: true }))
    expect(bare.map((c) => usageFrom(c))).toEqual([null, null, null])
  })

  it('per chunk kind: Responses events carry usage on response.completed only', async () => {
    const events = await collect(await fake.openai.responses.create({ model: 'o3-mini', input: 'Hi', stream: true }))
    expect(events.map((e) => [e.type, usageFrom(e)])).toEqual([
      ['response.created', null],
      ['response.in_progress', null],
      ['response.output_text.delta', null],
      ['response.completed', responsesUsage],
    ])
  })

  it('per chunk kind: Anthropic message_start and message_delta each carry running totals', async () => {
    const events = await collect(await fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [], stream: true }))
    const byType = Object.fromEntries(events.map((e) => [e.type, usageFrom(e)]))
    expect(byType.message_start).toEqual({ ...anthropicUsage, outputTokens: 1 })
    expect(byType.message_delta).toEqual(anthropicUsage)
    expect(byType.content_block_delta).toBeNull()
    expect(byType.message_stop).toBeNull()
  })
})

describe('streamUsage: the final usage once, whatever the order and repetition', () => {
  const cases = {
    'OpenAI chat': async () => collect(await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [], stream: true, stream_options: { include_usage: true } })),
    'OpenAI Responses': async () => collect(await fake.openai.responses.create({ model: 'o3-mini', input: 'Hi', stream: true })),
    Anthropic: async () => collect(await fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [], stream: true })),
  }
  const expected: Record<string, Usage> = { 'OpenAI chat': chatUsage, 'OpenAI Responses': responsesUsage, Anthropic: anthropicUsage }

  for (const [name, events] of Object.entries(cases)) {
    it(name, async () => {
      const all: object[] = await events()
      for (let seed = 1; seed <= 20; seed++) {
        // Every event once or twice, in a shuffled order.
        const stream = shuffled([...all, ...all.filter((_, i) => (i + seed) % 2 === 0)], seed)
        const acc = streamUsage()
        for (const e of stream) acc.add(e)
        expect(acc.complete).toBe(true)
        expect(acc.final()).toEqual(expected[name])
      }
    })
  }

  it('Anthropic: adding usageFrom of message_start and message_delta double counts; the accumulator does not', async () => {
    const events: any[] = await cases.Anthropic()
    const start = usageFrom(events.find((e) => e.type === 'message_start'))!
    const delta = usageFrom(events.find((e) => e.type === 'message_delta'))!
    expect(start.inputTokens + delta.inputTokens).toBe(2 * anthropicUsage.inputTokens) // the trap
    expect(streamUsage().add(events[0]).add(events.at(-2)).final()).toEqual(anthropicUsage)
  })

  it('track() passes a real SDK stream through and settles a budget with what it saw', async () => {
    const budget = new TokenBudget(new MemoryStore(), { maxTokens: 10_000 })
    const { hold } = await budget.reserve('u', 2_000)
    const acc = streamUsage()
    const stream = await fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [], stream: true })
    let text = ''
    for await (const e of acc.track(stream)) if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text
    expect(text).toBe('Hello!')
    expect(await budget.settle(hold!, acc)).toMatchObject({ used: 2_600 + 700, reserved: 0 })
  })

  it('Gemini chunks (running totals) and a cut-off Anthropic stream', () => {
    const chunk = (out: number, finishReason?: string) => ({
      candidates: [{ content: { parts: [{ text: 'x' }], role: 'model' }, ...(finishReason ? { finishReason } : {}) }],
      usageMetadata: { promptTokenCount: 1_000, cachedContentTokenCount: 600, candidatesTokenCount: out, thoughtsTokenCount: 50, totalTokenCount: 1_050 + out },
    })
    const chunks = [chunk(10), chunk(40), chunk(90, 'STOP')]
    for (let seed = 1; seed <= 10; seed++) {
      const acc = streamUsage()
      for (const c of shuffled([...chunks, chunks[seed % 3]], seed)) acc.add(c)
      expect(acc.final()).toEqual({ inputTokens: 1_000, cachedInputTokens: 600, cacheWriteTokens: 0, outputTokens: 140, reasoningTokens: 50 })
    }
    // An Anthropic stream cut after message_start: the usage so far, but no final usage.
    const cut = streamUsage().add({ type: 'message_start', message: { usage: { input_tokens: 10, output_tokens: 1 } } })
    expect(cut.usage).toMatchObject({ inputTokens: 10, outputTokens: 1 })
    expect(() => cut.final()).toThrow(expect.objectContaining({ code: codes.NO_USAGE }))
  })

  it('malformed token fields are coded errors, not zeros', () => {
    expect(() => usageFrom({ usage: { prompt_tokens: -1, completion_tokens: 2 } })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => usageFrom({ usage: { prompt_tokens: '12', completion_tokens: 2 } })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => usageFrom({ usage: { prompt_tokens: 10, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 11 } } })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
  })

  it('a stream without usage is an error, never a zero', async () => {
    const acc = streamUsage()
    for (const c of await collect(await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [], stream: true }))) acc.add(c)
    expect(acc.usage).toBeNull()
    expect(() => acc.final()).toThrow(expect.objectContaining({ name: 'TypeError', code: codes.NO_USAGE, message: expect.stringContaining('include_usage') }))
    const budget = new TokenBudget(new MemoryStore(), { maxTokens: 10_000 })
    const { hold } = await budget.reserve('u', 2_000)
    await expect(budget.settle(hold!, acc)).rejects.toMatchObject({ code: codes.NO_USAGE })
    expect(() => streamUsage().add({ object: 'chat.completion.chunk', choices: [] }).add({ type: 'message_start', message: {} })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
  })
})

forEachStore('settling with real SDK responses', (c) => {
  it('TokenBudget.settle takes a number, a Usage, or a response; input counts cached tokens', async () => {
    const budget = new TokenBudget(c.store(new Clock(0)), { maxTokens: 100_000, prefix: c.prefix('budget') })
    const completion = await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [] })
    const message = await fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] })
    const response = await fake.openai.responses.create({ model: 'o3-mini', input: 'Hi' })
    const settled = []
    for (const actual of [completion, message, response, usageFrom(completion)!, 1_500]) {
      const { hold } = await budget.reserve('u', 5_000)
      settled.push((await budget.settle(hold!, actual)).used)
    }
    // 1,500 (chat: total_tokens) + 3,300 (Anthropic: 2,600 in + 700 out) + 2,900 + 1,500 + 1,500.
    expect(settled).toEqual([1_500, 4_800, 7_700, 9_200, 10_700])
    expect(await budget.record('u', message)).toMatchObject({ used: 14_000 })
  })

  it("the README's old snippet (usage.totalTokens) is refused, naming the field real responses carry", async () => {
    const budget = new TokenBudget(c.store(new Clock(0)), { maxTokens: 100_000, prefix: c.prefix('budget') })
    const result = await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [] })
    const { hold } = await budget.reserve('u', 5_000)
    await expect(budget.settle(hold!, (result.usage as any).totalTokens)).rejects.toMatchObject({ code: codes.INVALID_ARG, message: expect.stringContaining('usage.total_tokens') })
    await expect(budget.settle(hold!, { id: 'x', choices: [] })).rejects.toMatchObject({ name: 'TypeError', code: codes.NO_USAGE })
    // The documented snippet: settle with the field the SDK returns (or the response).
    expect(await budget.settle(hold!, result.usage!.total_tokens)).toMatchObject({ used: 1_500, reserved: 0 })
  })

  it('CostTracker prices real responses of both providers the way costOf does', async () => {
    const t = new CostTracker(c.store(new Clock(Date.UTC(2026, 10, 25))), { prefix: c.prefix('cost'), onAlert: () => {} })
    const completion = await fake.openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [] })
    const message = await fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] })
    // gpt-4o-mini: 176 × 0.15 + 1,024 × 0.075 + 300 × 0.6 per 1M = 0.0000264 + 0.0000768 + 0.00018.
    expect(await t.recordUsage('gpt-4o-mini', completion)).toBe(0.0002832)
    expect(costOf(usageFrom(completion)!, 'gpt-4o-mini')).toBe(0.0002832)
    // claude-sonnet-4-5: 100 × 3 + 2,000 × 0.3 + 500 × 3.75 + 700 × 15 per 1M.
    const { hold } = await t.reserve(0.05, { model: 'claude-sonnet-4-5-20250929' })
    const s = await t.settle(hold!, message)
    expect(s.cost).toBe(0.013275)
    expect(s.daily.spent).toBe(0.0135582)
    await expect(t.recordUsage('gpt-4o', { id: 'chatcmpl-1' })).rejects.toMatchObject({ code: codes.NO_USAGE })
  })
})

describe('the job limiter agrees with costOf', () => {
  it('a job fed from usageFrom costs what costOf says; input counts cached tokens', async () => {
    const l = createLLMRateLimiter({ models: { 'gpt-4o': { tokensPerMinute: 100_000, pricing: { input: 2.5, cached: 1.25, output: 10 } } } })
    let ctx: any
    const completion = await fake.openai.chat.completions.create({ model: 'gpt-4o', messages: [] })
    const u = usageFrom(completion)!
    await l.queueJob({
      jobId: '1',
      job: async () => ({ requestCount: 1, inputTokens: u.inputTokens, cachedTokens: u.cachedInputTokens, outputTokens: u.outputTokens, data: null }),
      onComplete: (_r, c) => (ctx = c),
    })
    expect(ctx.totalCost).toBe(costOf(u, 'gpt-4o'))
    expect(l.getModelStats('gpt-4o').tokensPerMinute!.current).toBe(1_500) // total_tokens
    await l.stop()
  })

  it('a job may return the provider response as its usage; without pricing the catalog prices it', async () => {
    const l = createLLMRateLimiter({
      models: { 'gpt-4o-mini': { tokensPerMinute: 100_000 }, 'claude-sonnet-4-5': { tokensPerMinute: 100_000 }, 'my-llama': {} },
      escalationOrder: ['gpt-4o-mini', 'claude-sonnet-4-5', 'my-llama'],
    })
    const completion = await fake.openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [] })
    const message = await fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] })
    let ctx: any
    await l.queueJob({
      jobId: '1',
      job: async ({ modelId }, reject) => {
        if (modelId === 'gpt-4o-mini') {
          reject({ usage: completion })
          return { usage: completion, data: null }
        }
        if (modelId === 'claude-sonnet-4-5') {
          reject({ usage: message })
          return { usage: message, data: null }
        }
        return { requestCount: 1, inputTokens: 10, outputTokens: 5, data: 'ok' }
      },
      onComplete: (_r, c) => (ctx = c),
    })
    expect(ctx.usage.map((x: any) => [x.modelId, x.inputTokens, x.cachedTokens, x.cost])).toEqual([
      ['gpt-4o-mini', 1_200, 1_024, costOf(completion, 'gpt-4o-mini')],
      ['claude-sonnet-4-5', 2_600, 2_000, costOf(message, 'claude-sonnet-4-5')],
      ['my-llama', 10, 0, null], // no pricing and not in the catalog: no price, not $0
    ])
    expect(ctx.totalCost).toBeNull()
    expect(l.getModelStats('claude-sonnet-4-5').tokensPerMinute!.current).toBe(3_300)
    await l.stop()
  })

  it('cachedTokens above inputTokens is refused (inputTokens counts cached ones)', async () => {
    const l = createLLMRateLimiter({ models: { m: {} } })
    await expect(l.queueJob({ jobId: '1', job: async () => ({ requestCount: 1, inputTokens: 100, cachedTokens: 200, outputTokens: 0, data: null }) })).rejects.toMatchObject({
      code: codes.OUT_OF_RANGE,
    })
    await expect(l.queueJob({ jobId: '2', job: async () => ({ usage: { id: 'x' }, data: null }) as any })).rejects.toMatchObject({ code: codes.NO_USAGE })
    await l.stop()
  })

  it('unknown option names are refused, naming the closest known one', () => {
    const refused = (config: any, name: string, meant: string) =>
      expect(() => createLLMRateLimiter(config)).toThrow(expect.objectContaining({ name: 'TypeError', code: codes.UNKNOWN_OPTION, suggestion: meant, message: expect.stringContaining(name) }))
    refused({ models: { m: { rpm: 5 } } }, 'config.models.m.rpm', 'requestsPerMinute')
    refused({ models: { m: { tpm: 5 } } }, 'config.models.m.tpm', 'tokensPerMinute')
    refused({ models: { m: { requestPerMinute: 5 } } }, 'requestPerMinute', 'requestsPerMinute')
    refused({ models: { m: { concurrency: 5 } } }, 'concurrency', 'maxConcurrentRequests')
    refused({ models: { m: { pricing: { input: 1, cache: 1, output: 1 } } } }, 'pricing.cache', 'cached')
    refused({ models: { m: {} }, escalation: ['m'] }, 'config.escalation', 'escalationOrder')
    refused({ models: { m: {} }, resourceEstimationsPerJob: { s: { estimatedTokens: 5 } } }, 'estimatedTokens', 'estimatedUsedTokens')
  })

  it('queueJob after stop() rejects with LIMITER_STOPPED and never runs the job; start() resumes', async () => {
    const l = createLLMRateLimiter({ models: { m: {} } })
    await l.stop()
    let ran = false
    await expect(l.queueJob({ jobId: '1', job: async () => ((ran = true), { requestCount: 1, inputTokens: 0, outputTokens: 0, data: 1 }) })).rejects.toMatchObject({
      code: codes.LIMITER_STOPPED,
    })
    expect(ran).toBe(false)
    await l.start()
    expect(await l.queueJob({ jobId: '2', job: async () => ({ requestCount: 1, inputTokens: 0, outputTokens: 0, data: 2 }) })).toEqual({ data: 2, modelUsed: 'm' })
    await l.stop()
  })
})

describe('the smaller items', () => {
  it("selectModel('bogus-task') says the task was unknown, never 'requested'", async () => {
    const tiers = new ModelTiers()
    expect(await tiers.selectModel('bogus-task')).toMatchObject({ tier: 'standard', reason: 'unknown-task' })
    expect(await tiers.selectModel('complex')).toMatchObject({ tier: 'complex', reason: 'requested' })
  })

  it('a closed MemoryStore refuses every class with ERR_TOLLGATE_STORE_CLOSED', async () => {
    const store = new MemoryStore()
    const limiter = new RateLimiter(store)
    const budget = new TokenBudget(store, { maxTokens: 10 })
    const cache = new ResponseCache(store)
    const sessions = new SessionStore(store)
    const tracker = new CostTracker(store, { onAlert: () => {} })
    const semantic = new SemanticCache(store, { embed: () => [1, 0] })
    expect((await limiter.consume('a')).allowed).toBe(true)
    await store.close()
    expect(store.closed).toBe(true)
    const closed = expect.objectContaining({ name: 'StoreError', code: codes.STORE_CLOSED })
    await expect(limiter.consume('a')).rejects.toEqual(closed)
    await expect(budget.reserve('b', 1)).rejects.toEqual(closed)
    await expect(cache.get('m', [])).rejects.toEqual(closed)
    await expect(sessions.load('s')).rejects.toEqual(closed)
    await expect(tracker.recordCost(1)).rejects.toEqual(closed)
    await expect(semantic.get('m', [{ role: 'user', content: 'hi' }])).rejects.toEqual(closed)
    expect(() => store.size()).toThrow(closed)
  })

  it('withRetry hands the SDK per-request options that stop the SDK retrying too', async () => {
    const body = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'Hi' }] }
    const sleep = async () => {}
    // Passed through: exactly maxRetries + 1 requests.
    fake.requests.length = 0
    fake.rateLimit(10)
    await expect(withRetry((_, req) => fake.openai.chat.completions.create(body, req), { maxRetries: 2, sleep })).rejects.toMatchObject({ status: 429 })
    expect(fake.requests.length).toBe(3)
    // Ignored: the default client's own 2 retries multiply with withRetry's (3 × 3 = 9).
    fake.requests.length = 0
    fake.rateLimit(100)
    await expect(withRetry(() => fake.openai.chat.completions.create(body), { maxRetries: 2, sleep })).rejects.toMatchObject({ status: 429 })
    expect(fake.requests.length).toBe(9)
    fake.rateLimit(0)
    // Anthropic's SDK takes the same options.
    fake.requests.length = 0
    fake.rateLimit(1)
    const m = await withRetry((_, req) => fake.anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 10, messages: [] }, req), { maxRetries: 2, sleep })
    expect(m.usage.output_tokens).toBe(700)
    expect(fake.requests.length).toBe(2)
  })

  it('a missing Redis is named by host and port', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port
        srv.close(() => resolve(p))
      })
    })
    const store = new RedisStore(`redis://user:hunter2@127.0.0.1:${port}`)
    try {
      const err: any = await new RateLimiter(store).consume('a').catch((e) => e)
      expect(err).toMatchObject({ name: 'StoreError', code: codes.STORE_UNAVAILABLE })
      expect(err.message).toContain(`Redis at 127.0.0.1:${port}`)
      expect(err.message).not.toContain('hunter2')
    } finally {
      await store.close()
    }
  })

  it('cache, session and semantic reads are typed by the caller, unknown by default', async () => {
    const store = new MemoryStore()
    const cache = new ResponseCache(store)
    await cache.set('m', [], { text: 'hi' })
    const raw = await cache.get('m', [])
    // @ts-expect-error an untyped read is unknown, not any
    expect(raw.text).toBe('hi')
    expect((await cache.get<{ text: string }>('m', []))!.text).toBe('hi')
    const sessions = new SessionStore(store)
    await sessions.save('s', { messages: [] })
    const loaded = await sessions.load('s')
    // @ts-expect-error an untyped load is unknown, not any
    expect(loaded.messages).toEqual([])
    const semantic = new SemanticCache(store, { embed: () => [1, 0] })
    await semantic.set('m', [{ role: 'user', content: 'hi' }], { text: 'hello' })
    const found = await semantic.get<{ text: string }>('m', [{ role: 'user', content: 'hi' }])
    expect(found.hit && found.response.text).toBe('hello')
  })

  it('SemanticCache.stats() returns exactly the fields its type declares', async () => {
    const semantic = new SemanticCache(new MemoryStore(), { embed: () => [1, 0] })
    const keys: Array<keyof SemanticCacheStats> = [
      'entries', 'hits', 'exactHits', 'semanticHits', 'misses', 'falseHits', 'hitRate', 'avgLookupMs',
      'decisions', 'redisCalls', 'refused', 'errors', 'fallbacks', 'replayed', 'dropped', 'blockedLocally', 'policy', 'pending',
      'flushFailures', 'maxmemoryPolicy', 'storeStatus',
    ]
    expect(Object.keys(await semantic.stats()).sort()).toEqual([...keys].sort())
  })
})
