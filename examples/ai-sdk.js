'use strict'
// The AI SDK (`ai`) through a Guard: generateText and streamText on a model wrapped with
// tollgate's middleware. Each call is one decision before (estimated from the prompt and
// maxOutputTokens), the provider called only when admitted, one settlement after with the
// AI SDK's usage — for a stream, when it ends. A repeated question is answered from the
// guard's cache; a user over budget is refused before the provider is called.
//
// The model is the AI SDK's own mock (no network). With OPENAI_API_KEY set and
// `@ai-sdk/openai` installed, it is OpenAI's gpt-4o-mini instead.

const { Guard, MemoryStore, RedisStore, ResponseCache } = require('../lib/index.js')
const { guardMiddleware } = require('../lib/integrations/ai-sdk.js')

/** The AI SDK's mock language model: a fixed answer, streamed word by word, with its usage. */
async function mockModel() {
  const { MockLanguageModelV4 } = await import('ai/test')
  const text = 'Guards decide every limit at once.'
  const usage = { inputTokens: { total: 1_200, noCache: 1_200, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 180, text: 180, reasoning: 0 } }
  const finishReason = { unified: 'stop', raw: 'stop' }
  return new MockLanguageModelV4({
    modelId: 'gpt-4o-mini',
    doGenerate: async () => ({ content: [{ type: 'text', text }], finishReason, usage, warnings: [] }),
    doStream: async () => ({
      stream: new ReadableStream({
        start(controller) {
          controller.enqueue({ type: 'text-start', id: 't' })
          for (const word of text.split(/(?= )/)) controller.enqueue({ type: 'text-delta', id: 't', delta: word })
          controller.enqueue({ type: 'text-end', id: 't' })
          controller.enqueue({ type: 'finish', usage, finishReason })
          controller.close()
        },
      }),
    }),
  })
}

async function baseModel() {
  if (process.env.OPENAI_API_KEY) {
    try {
      const { openai } = await import('@ai-sdk/openai')
      return openai('gpt-4o-mini')
    } catch {
      console.log('(OPENAI_API_KEY is set but @ai-sdk/openai is not installed: using the mock model)')
    }
  }
  return mockModel()
}

async function main() {
  const { generateText, streamText, wrapLanguageModel } = await import('ai')
  const store = process.env.REDIS_URL ? new RedisStore(process.env.REDIS_URL) : new MemoryStore()
  const prefix = `ai-sdk-example:${process.pid}:`
  const guard = new Guard({
    store,
    prefix: `${prefix}guard:`,
    cache: new ResponseCache(store, { prefix: `${prefix}cache:` }),
    limits: [
      { id: 'user-tokens', scope: (ctx) => ctx.user, tokens: 2_900, per: 'day' },
      { id: 'model-concurrency', scope: (ctx) => ctx.model, concurrent: 4 },
    ],
  })
  const middleware = guardMiddleware(guard)
  const model = wrapLanguageModel({ model: await baseModel(), middleware })
  const as = (user) => ({ providerOptions: { tollgate: { user } } })
  const left = async (user) => (await guard.peek({ user, model: 'gpt-4o-mini' })).remaining['user-tokens']

  try {
    const a = await generateText({ model, prompt: 'What does a guard do?', maxOutputTokens: 200, ...as('alice') })
    console.log(`generateText  ${JSON.stringify(a.text)} — ${a.usage.inputTokens} in, ${a.usage.outputTokens} out; alice has ${await left('alice')} tokens left today`)

    const again = await generateText({ model, prompt: 'What does a guard do?', maxOutputTokens: 200, ...as('alice') })
    console.log(`cached        ${JSON.stringify(again.text)} — from the cache: ${again.providerMetadata.tollgate.cached}; alice still has ${await left('alice')}`)

    const s = streamText({ model, prompt: 'Say it again, streamed.', maxOutputTokens: 200, ...as('alice') })
    let streamed = ''
    for await (const delta of s.textStream) streamed += delta
    console.log(`streamText    ${JSON.stringify(streamed)}; settled when the stream ended: alice has ${await left('alice')} tokens left`)

    try {
      await generateText({ model, prompt: 'One more question, please.', maxOutputTokens: 200, maxRetries: 0, ...as('alice') })
    } catch (e) {
      console.log(`refused       ${e.code} by ${e.limit}: the provider was not called; alice still has ${await left('alice')}`)
    }
    console.log(`middleware    ${JSON.stringify(middleware.stats())}`)
  } finally {
    if (store instanceof RedisStore) await store.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
