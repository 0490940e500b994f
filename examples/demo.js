'use strict'
// npm run demo: tekimax's "Combining All Utilities" flow, end to end, against a simulated
// provider (no network). Runs on the embedded MemoryStore; set REDIS_URL to run it on Redis.
//
//   session → cache → rate limit → token budget → call → settle → cache → save
//
// The limits are small on purpose, so the scripted conversation shows every decision:
// cache hits, a rate-limit refusal, and a budget refusal.

const { MemoryStore, RedisStore, ResponseCache, RateLimiter, TokenBudget, SessionStore } = require('../lib/index.js')

const store = process.env.REDIS_URL ? new RedisStore(process.env.REDIS_URL) : new MemoryStore()
const prefix = `demo:${process.pid}:` // keeps runs apart when they share one Redis

const cache = new ResponseCache(store, { ttl: 3600, prefix: `${prefix}cache:` })
const limiter = new RateLimiter(store, { maxRequests: 4, windowSeconds: 60, prefix: `${prefix}ratelimit:` })
const budget = new TokenBudget(store, { maxTokens: 200, periodSeconds: 86_400, prefix: `${prefix}budget:` })
const sessions = new SessionStore(store, { ttl: 1800, prefix: `${prefix}session:` })

/** A stand-in for an OpenAI-style chat call: a canned answer and usage counted from the text. */
async function simulatedProvider(model, messages) {
  const last = messages[messages.length - 1].content
  const answer = `(${model}) You said "${last}" — here is a thoughtful answer.`
  const promptTokens = messages.reduce((n, m) => n + Math.ceil(m.content.length / 4) + 4, 0)
  const completionTokens = Math.ceil(answer.length / 4)
  return {
    message: { role: 'assistant', content: answer },
    usage: { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens },
  }
}

const log = (step, text) => console.log(`  ${step.padEnd(9)} ${text}`)

async function chat(userId, message) {
  // 1. Load the session.
  const session = (await sessions.load(userId)) ?? { messages: [] }
  session.messages.push({ role: 'user', content: message })
  log('session', `${session.messages.length - 1} earlier message(s)`)

  // 2. The cache: this exact conversation was answered before?
  const cached = await cache.get('gpt-4o', session.messages)
  if (cached) {
    log('cache', 'hit — no call, $0')
    return cached
  }
  log('cache', 'miss')

  // 3. The provider's rate limit, checked and counted in one atomic step.
  const rate = await limiter.consume('openai')
  log('limit', `${rate.allowed ? 'allowed' : 'REFUSED'} — ${rate.remaining} left, resets in ${rate.resetInSeconds}s`)
  if (!rate.allowed) throw new Error(`Rate limit — try again in ${rate.resetInSeconds}s`)

  // 4. The user's token budget: reserve an estimate before the call.
  const estimate = 60
  const reservation = await budget.reserve(userId, estimate)
  log('budget', `${reservation.hold ? `reserved ${estimate}` : 'REFUSED'} — used ${reservation.used}, reserved ${reservation.reserved}, ${reservation.remaining} left`)
  if (!reservation.hold) throw new Error('Daily token budget exceeded')

  // 5. The call; then settle the reservation with the real count (or release it on failure).
  let result
  try {
    result = await simulatedProvider('gpt-4o', session.messages)
  } catch (e) {
    await budget.release(reservation.hold)
    throw e
  }
  const settled = await budget.settle(reservation.hold, result.usage.totalTokens)
  log('call', `${result.usage.totalTokens} tokens used → budget ${settled.used}/${budget.maxTokens}`)

  // 6. Cache the answer and save the session.
  await cache.set('gpt-4o', session.messages, result)
  session.messages.push(result.message)
  await sessions.save(userId, session)
  log('save', `session now has ${session.messages.length} messages`)
  return result
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
      console.log(`  reply     ${reply.message.content}\n`)
    } catch (e) {
      console.log(`  error     ${e.message}\n`)
    }
  }
  // A budget refusal: alice has used most of her 200 tokens; a big estimate does not fit.
  const big = await budget.reserve('alice', 150)
  console.log(`alice reserves 150 more tokens: ${big.hold ? 'granted' : 'refused'} (used ${big.used}, ${big.remaining} left)`)
  await store.close()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
