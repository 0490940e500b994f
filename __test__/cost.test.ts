// Prices, costs and usage normalisation, with golden values computed by hand from the
// providers' response shapes. Cached tokens are never billed twice.
import { describe, expect, it } from 'vitest'
import { codes, costOf, definePrice, estimateCost, priceOf, usageFrom } from '../lib/index.js'

const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThan(1e-9)

describe('usageFrom', () => {
  it('OpenAI chat completions (and the final streaming chunk)', () => {
    const response = {
      id: 'chatcmpl-1', object: 'chat.completion', model: 'gpt-4o-2024-08-06', choices: [],
      usage: { prompt_tokens: 10_000, completion_tokens: 500, total_tokens: 10_500, prompt_tokens_details: { cached_tokens: 4_000 }, completion_tokens_details: { reasoning_tokens: 0 } },
    }
    expect(usageFrom(response)).toEqual({ inputTokens: 10_000, cachedInputTokens: 4_000, cacheWriteTokens: 0, outputTokens: 500, reasoningTokens: 0 })
    const chunk = { object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 } }
    expect(usageFrom(chunk)).toEqual({ inputTokens: 12, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 3, reasoningTokens: 0 })
    expect(usageFrom({ object: 'chat.completion.chunk', choices: [], usage: null })).toBeNull()
  })

  it('OpenAI Responses API with reasoning', () => {
    const response = { object: 'response', usage: { input_tokens: 2_000, input_tokens_details: { cached_tokens: 1_024 }, output_tokens: 900, output_tokens_details: { reasoning_tokens: 600 }, total_tokens: 2_900 } }
    expect(usageFrom(response)).toEqual({ inputTokens: 2_000, cachedInputTokens: 1_024, cacheWriteTokens: 0, outputTokens: 900, reasoningTokens: 600 })
  })

  it('Anthropic messages: input_tokens excludes cache reads and writes', () => {
    const message = { type: 'message', role: 'assistant', usage: { input_tokens: 1_000, cache_read_input_tokens: 2_000, cache_creation_input_tokens: 3_000, output_tokens: 700 } }
    expect(usageFrom(message)).toEqual({ inputTokens: 6_000, cachedInputTokens: 2_000, cacheWriteTokens: 3_000, outputTokens: 700, reasoningTokens: 0 })
    // Streaming: message_start carries the input, message_delta the output.
    expect(usageFrom({ type: 'message_start', message: { usage: { input_tokens: 50, output_tokens: 1 } } })).toMatchObject({ inputTokens: 50, outputTokens: 1 })
    expect(usageFrom({ type: 'message_delta', usage: { output_tokens: 321 } })).toMatchObject({ inputTokens: 0, outputTokens: 321 })
  })

  it('Gemini: cached content inside the prompt count, thoughts billed as output', () => {
    const response = { candidates: [], usageMetadata: { promptTokenCount: 100_000, cachedContentTokenCount: 60_000, candidatesTokenCount: 1_500, thoughtsTokenCount: 500, totalTokenCount: 102_000 } }
    expect(usageFrom(response)).toEqual({ inputTokens: 100_000, cachedInputTokens: 60_000, cacheWriteTokens: 0, outputTokens: 2_000, reasoningTokens: 500 })
  })

  it("tekimax's ChatResult, and nothing", () => {
    expect(usageFrom({ message: {}, usage: { promptTokens: 5, completionTokens: 7, totalTokens: 12 } })).toMatchObject({ inputTokens: 5, outputTokens: 7 })
    expect(usageFrom({})).toBeNull()
    expect(usageFrom(null)).toBeNull()
  })
})

describe('costOf, golden values per provider', () => {
  it('OpenAI gpt-4o with cached input', () => {
    const u = usageFrom({ usage: { prompt_tokens: 10_000, completion_tokens: 500, prompt_tokens_details: { cached_tokens: 4_000 } } })!
    close(costOf(u, 'gpt-4o-2024-08-06'), (6_000 * 2.5 + 4_000 * 1.25 + 500 * 10) / 1e6) // $0.025
    close(costOf(u, 'gpt-4o', { batch: true }), 0.025 / 2)
  })

  it('OpenAI reasoning tokens are billed once, as output', () => {
    const u = usageFrom({ usage: { input_tokens: 2_000, input_tokens_details: { cached_tokens: 0 }, output_tokens: 900, output_tokens_details: { reasoning_tokens: 600 } } })!
    close(costOf(u, 'o3-mini'), (2_000 * 1.1 + 900 * 4.4) / 1e6)
  })

  it('Anthropic cache read and cache write', () => {
    const u = usageFrom({ type: 'message', usage: { input_tokens: 1_000, cache_read_input_tokens: 2_000, cache_creation_input_tokens: 3_000, output_tokens: 700 } })!
    close(costOf(u, 'claude-sonnet-4-20250514'), 0.003 + 0.0006 + 0.01125 + 0.0105) // $0.02535
  })

  it('Gemini cached content (not billed twice, LiteLLM#14849)', () => {
    const u = usageFrom({ usageMetadata: { promptTokenCount: 100_000, cachedContentTokenCount: 60_000, candidatesTokenCount: 1_500, thoughtsTokenCount: 500 } })!
    close(costOf(u, 'gemini-2.5-flash'), (40_000 * 0.3 + 60_000 * 0.075 + 2_000 * 2.5) / 1e6) // $0.0215
  })

  it("the cost patterns article's estimate shape and numbers", () => {
    const e = estimateCost(12, 100, 'gpt-4o-mini')
    expect(e).toMatchObject({ inputTokens: 12, estimatedOutputTokens: 100, model: 'gpt-4o-mini' })
    close(e.estimatedCost, 0.0000618)
    expect(estimateCost('Hello, world!', 0, 'gpt-4o').inputTokens).toBe(4)
    expect(estimateCost('Hello, world!', 0, 'claude-sonnet-4').inputTokens).toBe(4) // counted with o200k_base
  })
})

describe('prices', () => {
  it('has every model the systems it replaces name, and dated ids find their family', () => {
    for (const m of ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-4.1-nano', 'gpt-4', 'gpt-3.5-turbo', 'claude-sonnet-4', 'claude-haiku-3.5', 'claude-3-sonnet', 'gemini-2.5-pro']) {
      expect(priceOf(m), m).not.toBeNull()
    }
    expect(priceOf('gpt-4o')).toEqual({ input: 2.5, cachedInput: 1.25, cacheWrite: 2.5, output: 10, batchDiscount: 0.5 })
    expect(priceOf('claude-3-5-sonnet-latest')).toEqual({ input: 3, cachedInput: 0.3, cacheWrite: 3.75, output: 15, batchDiscount: 0.5 })
    expect(priceOf('gpt-4o-mini-2024-07-18')).toEqual(priceOf('gpt-4o-mini'))
    expect(priceOf('my-finetune')).toBeNull()
  })

  it('definePrice adds models and overrides the catalog', () => {
    definePrice('acme-llm', { input: 1, output: 2 })
    expect(priceOf('acme-llm-2026-01-01')).toEqual({ input: 1, cachedInput: 1, cacheWrite: 1, output: 2, batchDiscount: 0.5 })
    close(costOf({ inputTokens: 1e6, outputTokens: 1e6 }, 'acme-llm'), 3)
    definePrice('acme-llm', { input: 2, output: 2 })
    close(costOf({ inputTokens: 1e6, outputTokens: 0 }, 'acme-llm'), 2)
  })

  it('rejects unknown models and impossible usages with typed errors', () => {
    expect(() => costOf({ inputTokens: 1 }, 'no-such-model')).toThrow(expect.objectContaining({ name: 'RangeError', code: codes.UNKNOWN_MODEL }))
    expect(() => costOf({ inputTokens: 1, cachedInputTokens: 2 }, 'gpt-4o')).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => costOf({ inputTokens: -1 }, 'gpt-4o')).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => costOf({ inputTokens: '5' as any }, 'gpt-4o')).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => definePrice('x', { input: NaN, output: 1 })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => definePrice('x', { input: 1 } as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
  })
})

describe("the guard's cost in plain arithmetic (nanoExact) answers as the engine does", () => {
  // Internal: the guard prices each decision in JavaScript when the amounts are exact there.
  const { nanoExact } = require('../lib/cost.js')
  const native = require('../lib/native.js')
  const engine = (u: number[], p: number[]) => native.costNanoParts(u[0], u[1], u[2], u[3], p[0], p[1], p[2], p[3], p[4])
  it('at every rounding edge, and hands what it cannot hold exactly to the engine', () => {
    const cases: [number[], number[]][] = [
      [[1, 0, 0, 0], [499_999, 0, 0, 0, 500_000]], // 0.499999 → 0
      [[1, 0, 0, 0], [500_000, 0, 0, 0, 500_000]], // 0.5 → 1 (half up)
      [[3, 0, 0, 1], [1_499_999, 0, 0, 1, 500_000]],
      [[10, 4, 3, 7], [2_500_000_000, 1_250_000_000, 3_125_000_000, 10_000_000_000, 500_000]],
      [[2, 5, 0, 0], [7, 11, 13, 17, 500_000]], // more cached than input: uncached is 0
      [[9_007_199_254, 0, 0, 0], [999_999, 0, 0, 0, 500_000]], // a sum near 2^53
    ]
    for (const [u, p] of cases) expect(nanoExact(u[0], u[1], u[2], u[3], p), JSON.stringify([u, p])).toBe(engine(u, p))
    // Past 2^53 it declines (the engine's u128 answers).
    expect(nanoExact(2 ** 40, 0, 0, 0, [2 ** 20, 0, 0, 0, 0])).toBe(-1)
  })
  it('on 20,000 random usages and prices', () => {
    let x = 88172645
    const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32)
    let checked = 0
    for (let i = 0; i < 20_000; i++) {
      const scale = [1e3, 1e6, 1e9][i % 3]
      const u = [0, 0, 0, 0].map(() => Math.floor(next() * scale))
      const p = [0, 0, 0, 0].map(() => Math.floor(next() * [1e9, 1e11, 1e13][(i >> 2) % 3])).concat([500_000])
      const e = nanoExact(u[0], u[1], u[2], u[3], p)
      if (e < 0) continue
      checked++
      expect(e).toBe(engine(u, p))
    }
    expect(checked).toBeGreaterThan(5_000)
  })
})
