'use strict'
// npm run demo: one guarded LLM call per chat turn, end to end, against a simulated provider
// (no network). Runs on the embedded MemoryStore; set REDIS_URL to run it on Redis.
//
//   session → guard.acquire (cache, every limit at once) → call → settle (real usage) → save
//
// tekimax's "Combining All Utilities" wires a cache, a rate limiter and a token budget by hand:
// five objects and as many awaits, and a request the budget refuses has already been charged
// by the rate limiter. Here one Guard decides every limit at once, and a refused request
// charges nothing. The limits are small on purpose, so the script shows every decision.

const { MemoryStore, RedisStore, ResponseCache, SessionStore, Guard } = require('../lib/index.js')

const store = process.env.REDIS_URL ? new RedisStore(process.env.REDIS_URL) : new MemoryStore()
const prefix = `demo:${process.pid}:` // keeps runs apart when they share one Redis

const cache = new ResponseCache(store, { ttl: 3600, prefix: `${prefix}cache:` })
const sessions = new SessionStore(store, { ttl: 1800, prefix: `${prefix}session:` })
const guard = new Guard({
  store,
  prefix: `${prefix}guard:`,
  cache,
  limits: [
    { id: 'user-tokens', scope: (ctx) => ctx.user, tokens: 400, per: 'day' },
    { id: 'org-usd', scope: (ctx) => ctx.org, usd: 0.05, per: 'month' },
    { id: 'provider-rpm', scope: () => 'openai', requests: 4, per: '1m' },
    { id: 'model-concurrency', scope: (ctx) => ctx.model, concurrent: 2 },
  ],
})

/** A stand-in for the OpenAI SDK's chat.completions.create: a canned answer, usage counted from the text. */
async function simulatedProvider(model, messages) {
  const last = messages[messages.length - 1].content
  const answer = `(${model}) You said "${last}" — here is a thoughtful answer.`
  const promptTokens = messages.reduce((n, m) => n + Math.ceil(m.content.length / 4) + 4, 0)
  const completionTokens = Math.ceil(answer.length / 4)
  return {
    id: `chatcmpl-${promptTokens}`,
    object: 'chat.completion',
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  }
}

const log = (step, text) => console.log(`  ${step.padEnd(9)} ${text}`)
const left = (remaining) =>
  Object.entries(remaining)
    .map(([id, n]) => `${id} ${id === 'org-usd' ? `$${n.toFixed(6)}` : n}`)
    .join(', ')

async function chat(user, message) {
  const session = (await sessions.load(user)) ?? { messages: [] }
  session.messages.push({ role: 'user', content: message })
  log('session', `${session.messages.length - 1} earlier message(s)`)

  // One decision: the cache, then every limit at once (estimated from the messages + maxTokens).
  const ctx = { user, org: 'acme', model: 'gpt-4o' }
  const d = await guard.acquire(ctx, { model: 'gpt-4o', messages: session.messages, maxTokens: 40 })
  if (d.cached) {
    log('cache', 'hit — no call, $0')
    return d.cached
  }
  if (!d.ok) {
    log('guard', `REFUSED by ${d.limit} — nothing charged (${left(d.remaining)})`)
    throw new Error(`Limited by ${d.limit} — try again in ${Math.ceil(d.retryAfterMs / 1000)}s`)
  }
  log('guard', `admitted — ${left(d.remaining)}`)

  // The call; then one settlement with the real usage (or cancel: everything given back).
  let response
  try {
    response = await simulatedProvider('gpt-4o', session.messages)
  } catch (e) {
    await d.cancel()
    throw e
  }
  await d.settle(response) // real tokens and dollars, the slot freed, the response cached
  log('call', `${response.usage.total_tokens} tokens used`)

  session.messages.push(response.choices[0].message)
  await sessions.save(user, session)
  return response
}

async function main() {
  console.log(`tollgate demo on ${process.env.REDIS_URL ? `Redis (${process.env.REDIS_URL})` : 'the embedded MemoryStore'}\n`)
  const script = [
    ['alice', 'Hello'],
    ['bob', 'Hello'], // same conversation as alice's first turn: answered from the cache
    ['alice', 'What is a token budget?'],
    ['carol', 'Summarise the plot of Hamlet in one line'],
    ['alice', 'And a sliding window?'],
    ['dave', 'Is it my turn?'], // the fifth call inside a minute: over the provider's limit
  ]
  for (const [user, message] of script) {
    console.log(`${user}: ${message}`)
    try {
      const reply = await chat(user, message)
      console.log(`  reply     ${reply.choices[0].message.content}\n`)
    } catch (e) {
      console.log(`  error     ${e.message}\n`)
    }
  }
  // The refusal charged nothing: dave's tokens and the org's dollars are as they were.
  const dave = await guard.peek({ user: 'dave', org: 'acme', model: 'gpt-4o' })
  console.log(`dave after the refusal: ${left(dave.remaining)}`)
  // A long answer does not fit alice's daily tokens: refused by that limit alone, nothing charged.
  const big = await guard.acquire({ user: 'alice', org: 'acme', model: 'gpt-4o' }, { model: 'gpt-4o', tokens: 100, maxTokens: 300 })
  console.log(`alice asks for 300 more tokens: ${big.ok ? 'admitted' : `refused by ${big.limit}`} (${left(big.remaining)})`)
  await store.close()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
