// tollgate/ai-sdk with the real `ai` package: generateText and streamText over a mock model of
// the AI SDK's own test helpers (no network), through wrapLanguageModel and the guard.
import { generateText, streamText, wrapLanguageModel } from 'ai'
import { MockLanguageModelV4 } from 'ai/test'
import { describe, expect, it } from 'vitest'
import { Guard, MemoryStore, ResponseCache, countMessageTokens, countTokens } from '../lib/index.js'
import { guardMiddleware, usageFromAiSdk } from '../lib/integrations/ai-sdk.js'

type V4Usage = { inputTokens: { total: number | undefined; noCache: number | undefined; cacheRead: number | undefined; cacheWrite: number | undefined }; outputTokens: { total: number | undefined; text: number | undefined; reasoning: number | undefined } }

const usage = (input: number, output: number, cacheRead = 0, reasoning = 0): V4Usage => ({
  inputTokens: { total: input, noCache: input - cacheRead, cacheRead, cacheWrite: 0 },
  outputTokens: { total: output, text: output - reasoning, reasoning },
})
const stop = { unified: 'stop' as const, raw: 'stop' }

/** A mock model answering `text` with `u`, generating or streaming (word by word). */
function mockModel(text: string, u: V4Usage, opts: { hang?: boolean; until?: Promise<void> } = {}) {
  return new MockLanguageModelV4({
    modelId: 'gpt-4o-mini',
    doGenerate: async () => ({ content: [{ type: 'text', text }], finishReason: stop, usage: u, warnings: [] }),
    doStream: async ({ abortSignal }) => {
      const words = text.split(/(?= )/)
      let i = 0
      return {
        stream: new ReadableStream({
          async pull(controller) {
            if (i === 0) controller.enqueue({ type: 'text-start', id: 't' })
            if (i < words.length) {
              controller.enqueue({ type: 'text-delta', id: 't', delta: words[i++] })
              return
            }
            if (opts.hang) {
              // a provider that stops sending: only the reader's cancel or the abort ends it
              await new Promise((_, reject) => abortSignal?.addEventListener('abort', () => reject(abortSignal.reason)))
            }
            if (opts.until) await opts.until
            controller.enqueue({ type: 'text-end', id: 't' })
            controller.enqueue({ type: 'finish', usage: u, finishReason: stop })
            controller.close()
          },
        }),
      }
    },
  })
}

const policy = () => [
  { id: 'user-tokens', scope: (c: any) => c.user, tokens: 10_000, per: '1h' as const },
  { id: 'model-concurrency', scope: (c: any) => c.model, concurrent: 2 },
]
const ctx = { providerOptions: { tollgate: { user: 'u1' } } }

describe('tollgate/ai-sdk', () => {
  it('generateText: acquires from the prompt, settles with the AI SDK usage, never sends the context to the provider', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: policy() })
    const inner = mockModel('Paris.', usage(120, 7, 100))
    const mw = guardMiddleware(guard)
    const model = wrapLanguageModel({ model: inner, middleware: mw })
    const r = await generateText({ model, prompt: 'The capital of France?', maxOutputTokens: 50, ...ctx })
    expect(r.text).toBe('Paris.')
    expect(inner.doGenerateCalls[0].providerOptions).toBeUndefined()
    expect((await guard.peek({ user: 'u1', model: 'gpt-4o-mini' })).remaining).toEqual({ 'user-tokens': 10_000 - 127, 'model-concurrency': 2 })
    expect(mw.stats()).toMatchObject({ calls: 1, settled: 1, estimated: 0, refused: 0 })
  })

  it('the context comes from providerOptions.tollgate, with the model and provider filled in, or from options.context', async () => {
    const seen: any[] = []
    const limits = [{ id: 'any', scope: (c: any) => (seen.push(c), 'x'), requests: 100, per: '1m' as const }]
    const guard = new Guard({ store: new MemoryStore(), limits })
    const model = wrapLanguageModel({ model: mockModel('ok', usage(5, 1)), middleware: guardMiddleware(guard) })
    await generateText({ model, prompt: 'hi', providerOptions: { tollgate: { user: 'u9', org: 'acme' }, openai: { store: false } } })
    expect(seen[0]).toEqual({ model: 'gpt-4o-mini', provider: 'mock-provider', user: 'u9', org: 'acme' })
    const als = { user: 'from-storage' }
    const model2 = wrapLanguageModel({ model: mockModel('ok', usage(5, 1)), middleware: guardMiddleware(guard, { context: () => als }) })
    await generateText({ model: model2, prompt: 'hi' })
    expect(seen.at(-1)).toBe(als)
  })

  it('a refused call rejects with ERR_TOLLGATE_LIMITED carrying the decision, and never reaches the provider', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: [{ id: 'user-tokens', scope: (c: any) => c.user, tokens: 300, per: '1h' }] })
    const inner = mockModel('never', usage(1, 1))
    const mw = guardMiddleware(guard)
    const model = wrapLanguageModel({ model: inner, middleware: mw })
    const err: any = await generateText({ model, prompt: 'hello', maxOutputTokens: 500, ...ctx, maxRetries: 0 }).catch((e) => e)
    expect(err.code).toBe('ERR_TOLLGATE_LIMITED')
    expect(err.limit).toBe('user-tokens')
    expect(err.decision).toMatchObject({ ok: false, limit: 'user-tokens', retryAfterMs: null })
    expect(inner.doGenerateCalls).toHaveLength(0)
    expect((await guard.peek({ user: 'u1' })).remaining['user-tokens']).toBe(300)
    expect(mw.stats()).toMatchObject({ calls: 1, refused: 1 })
  })

  it('estimates input from the prompt (and tools) and output from maxOutputTokens', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: [{ id: 'tpm', scope: 'all', tokens: 100_000, per: '1m' }] })
    let estimate = -1
    const inner = new MockLanguageModelV4({
      modelId: 'gpt-4o-mini',
      doGenerate: async () => {
        estimate = 100_000 - (await guard.peek({})).remaining.tpm
        return { content: [{ type: 'text', text: 'ok' }], finishReason: stop, usage: usage(10, 1), warnings: [] }
      },
    })
    const model = wrapLanguageModel({ model: inner, middleware: guardMiddleware(guard) })
    await generateText({ model, system: 'Be brief.', prompt: 'What is 2 + 2?', maxOutputTokens: 64 })
    const expected = countMessageTokens([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is 2 + 2?' }], 'gpt-4o-mini') + 64
    expect(estimate).toBe(expected)
    expect((await guard.peek({})).remaining.tpm).toBe(100_000 - 11)
  })

  it('with the guard cache, a repeated call is answered from it, for generateText and streamText alike', async () => {
    const store = new MemoryStore()
    const guard = new Guard({ store, cache: new ResponseCache(store), limits: policy() })
    const inner = mockModel('The answer is 4.', usage(30, 6))
    const mw = guardMiddleware(guard)
    const model = wrapLanguageModel({ model: inner, middleware: mw })
    const first = await generateText({ model, prompt: 'What is 2 + 2?', ...ctx })
    const again = await generateText({ model, prompt: 'What is 2 + 2?', ...ctx })
    expect(again.text).toBe(first.text)
    expect(again.providerMetadata).toEqual({ tollgate: { cached: true } })
    expect(again.usage.inputTokens).toBe(30)
    expect(inner.doGenerateCalls).toHaveLength(1)
    const streamed = streamText({ model, prompt: 'What is 2 + 2?', ...ctx })
    expect(await streamed.text).toBe('The answer is 4.')
    expect(inner.doStreamCalls).toHaveLength(0)
    // another temperature is another request
    await generateText({ model, prompt: 'What is 2 + 2?', temperature: 0.9, ...ctx })
    expect(inner.doGenerateCalls).toHaveLength(2)
    expect(mw.stats()).toMatchObject({ calls: 4, cached: 2, settled: 2 })
    expect((await guard.peek({ user: 'u1', model: 'gpt-4o-mini' })).remaining['user-tokens']).toBe(10_000 - 72)
  })

  it('streamText: settles with the finish usage when the stream ends, and a streamed answer is cached', async () => {
    const store = new MemoryStore()
    const guard = new Guard({ store, cache: new ResponseCache(store), limits: policy() })
    const inner = mockModel('one two three', usage(40, 3, 0, 1))
    const mw = guardMiddleware(guard)
    const model = wrapLanguageModel({ model: inner, middleware: mw })
    const s = streamText({ model, prompt: 'Count to three.', ...ctx })
    expect(await s.text).toBe('one two three')
    expect((await s.usage).outputTokenDetails.reasoningTokens).toBe(1)
    expect((await guard.peek({ user: 'u1', model: 'gpt-4o-mini' })).remaining).toEqual({ 'user-tokens': 10_000 - 43, 'model-concurrency': 2 })
    const cached = await generateText({ model, prompt: 'Count to three.', ...ctx })
    expect(cached.text).toBe('one two three')
    expect(inner.doGenerateCalls).toHaveLength(0)
  })

  it('a stream the reader abandons settles what was used: the input estimate and the output seen', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: policy() })
    const inner = mockModel('alpha beta gamma', usage(40, 3), { hang: true })
    const mw = guardMiddleware(guard)
    const model = wrapLanguageModel({ model: inner, middleware: mw })
    const abort = new AbortController()
    const s = streamText({ model, prompt: 'Say three words.', abortSignal: abort.signal, ...ctx })
    let text = ''
    for await (const delta of s.textStream) {
      text += delta
      if (text === 'alpha beta gamma') abort.abort()
    }
    for (let i = 0; i < 100 && mw.stats().settled === 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(mw.stats()).toMatchObject({ settled: 1, estimated: 1 })
    const input = countMessageTokens([{ role: 'user', content: 'Say three words.' }], 'gpt-4o-mini')
    expect((await guard.peek({ user: 'u1', model: 'gpt-4o-mini' })).remaining).toEqual({ 'user-tokens': 10_000 - input - countTokens('alpha beta gamma'), 'model-concurrency': 2 })
  })

  it('a stream without a usage settles the estimate (counted in stats); a provider error gives everything back', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: policy() })
    const mw = guardMiddleware(guard)
    const none = { inputTokens: { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined }, outputTokens: { total: undefined, text: undefined, reasoning: undefined } }
    const s = streamText({ model: wrapLanguageModel({ model: mockModel('no usage here', none), middleware: mw }), prompt: 'hi', ...ctx })
    expect(await s.text).toBe('no usage here')
    expect(mw.stats()).toMatchObject({ settled: 1, estimated: 1 })
    const input = countMessageTokens([{ role: 'user', content: 'hi' }], 'gpt-4o-mini')
    expect((await guard.peek({ user: 'u1', model: 'gpt-4o-mini' })).remaining['user-tokens']).toBe(10_000 - input - countTokens('no usage here'))

    const failing = new MockLanguageModelV4({
      modelId: 'gpt-4o-mini',
      doGenerate: async () => {
        throw new Error('provider down')
      },
    })
    const mw2 = guardMiddleware(guard)
    await expect(generateText({ model: wrapLanguageModel({ model: failing, middleware: mw2 }), prompt: 'hi', maxRetries: 0, providerOptions: { tollgate: { user: 'u2' } } })).rejects.toThrow('provider down')
    expect(mw2.stats()).toMatchObject({ cancelled: 1, settled: 0 })
    expect((await guard.peek({ user: 'u2', model: 'gpt-4o-mini' })).remaining).toEqual({ 'user-tokens': 10_000, 'model-concurrency': 2 })
  })

  it('holds a concurrency slot for the whole stream, freed at its end', async () => {
    const guard = new Guard({ store: new MemoryStore(), limits: [{ id: 'one', scope: 'all', concurrent: 1 }] })
    let finish!: () => void
    const until = new Promise<void>((r) => (finish = r))
    const model = wrapLanguageModel({ model: mockModel('a b c', usage(5, 3), { until }), middleware: guardMiddleware(guard) })
    const s = streamText({ model, prompt: 'hi' })
    const reader = s.textStream[Symbol.asyncIterator]()
    await reader.next()
    expect((await guard.peek({})).remaining.one).toBe(0)
    const err: any = await generateText({ model, prompt: 'hi', maxRetries: 0 }).catch((e) => e)
    expect(err.code).toBe('ERR_TOLLGATE_LIMITED')
    finish()
    while (!(await reader.next()).done);
    await s.usage
    expect((await guard.peek({})).remaining.one).toBe(1)
  })

  it("usageFromAiSdk reads the model's usage and generateText's, and nothing else", () => {
    expect(usageFromAiSdk(usage(100, 20, 60, 5))).toEqual({ inputTokens: 100, cachedInputTokens: 60, cacheWriteTokens: 0, outputTokens: 20, reasoningTokens: 5 })
    expect(
      usageFromAiSdk({
        inputTokens: 100,
        inputTokenDetails: { noCacheTokens: 30, cacheReadTokens: 60, cacheWriteTokens: 10 },
        outputTokens: 20,
        outputTokenDetails: { textTokens: 15, reasoningTokens: 5 },
        totalTokens: 120,
      }),
    ).toEqual({ inputTokens: 100, cachedInputTokens: 60, cacheWriteTokens: 10, outputTokens: 20, reasoningTokens: 5 })
    // only the parts: they are the count
    expect(usageFromAiSdk({ inputTokens: { total: undefined, noCache: 10, cacheRead: 5, cacheWrite: undefined }, outputTokens: { total: undefined, text: 3, reasoning: 2 } })).toMatchObject({ inputTokens: 15, outputTokens: 5 })
    expect(usageFromAiSdk({ inputTokens: { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined }, outputTokens: { total: 3, text: 3, reasoning: undefined } })).toBeNull()
    expect(usageFromAiSdk(undefined)).toBeNull()
    expect(() => usageFromAiSdk({ inputTokens: -1, outputTokens: 2 })).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
  })

  it('checks its options', () => {
    const guard = new Guard({ store: new MemoryStore(), limits: [] })
    expect(() => guardMiddleware({} as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => guardMiddleware(guard, { contex: () => ({}) } as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_UNKNOWN_OPTION' }))
    expect(() => guardMiddleware(guard, { model: 3 } as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(guardMiddleware(guard).specificationVersion).toBe('v4')
  })
})
