'use strict'
// An express chat server with per-user limits and dollar budgets, end to end:
//
//   HTTP request ─ expressGuard (user requests per minute, user requests in flight)
//     └ POST /chat ─ guarded OpenAI client (user dollars per day, org dollars per month)
//
// Two guards, one per layer: the HTTP layer charges one request per HTTP request (and frees the
// concurrency slot when the response is done); the LLM layer is an OpenAI client wrapped by
// guardOpenAI (tollgate/openai): each chat.completions.create is decided for the user and org
// given with withContext, before anything is sent, and settled in dollars from the response's
// usage. A refusal at either layer is a 429 with Retry-After and the RateLimit headers.
//
// Without OPENAI_API_KEY the OpenAI client talks to a local stand-in of the chat completions
// API (started below, no network); with it, to the real API. The script starts the server on a
// free port, plays a few users against it, prints what they got, and exits.

const http = require('node:http')
const express = require('express')
const OpenAI = require('openai')
const { Guard, MemoryStore, RedisStore } = require('../lib/index.js')
const { expressGuard } = require('../lib/integrations/http.js')
const { guardOpenAI } = require('../lib/integrations/openai.js')

const store = process.env.REDIS_URL ? new RedisStore(process.env.REDIS_URL) : new MemoryStore()
const prefix = `express-chat:${process.pid}:` // keeps runs apart when they share one Redis
const model = 'gpt-4o-mini'

const httpLimits = [
  { id: 'user-rpm', scope: (ctx) => ctx.key, requests: 4, per: '1m' },
  { id: 'user-inflight', scope: (ctx) => ctx.key, concurrent: 2 },
]
const httpGuard = new Guard({ store, prefix: `${prefix}http:`, limits: httpLimits })
const llmGuard = new Guard({
  store,
  prefix: `${prefix}llm:`,
  limits: [
    { id: 'user-usd', scope: (ctx) => ctx.user, usd: 0.001, per: 'day' },
    { id: 'org-usd', scope: (ctx) => ctx.org, usd: 20, per: 'month' },
  ],
})

function app(openai) {
  const ai = guardOpenAI(openai, llmGuard)
  const app = express()
  app.use(express.json())
  app.use(expressGuard(httpGuard, { key: (req) => req.get('x-user') ?? null, limits: httpLimits }))

  app.post('/chat', async (req, res, next) => {
    const messages = [{ role: 'user', content: String(req.body.message) }]
    try {
      // Refused (ERR_TOLLGATE_LIMITED) before the request is sent when the user's or the org's
      // budget cannot take the call's estimate (its messages and max_tokens).
      const completion = await ai.withContext({ user: req.get('x-user'), org: 'acme' }).chat.completions.create({ model, messages, max_tokens: 300 })
      res.json({ answer: completion.choices[0].message.content })
    } catch (e) {
      if (e.code !== 'ERR_TOLLGATE_LIMITED') return next(e)
      if (e.retryAfterMs !== null) res.set('Retry-After', String(Math.ceil(e.retryAfterMs / 1000)))
      res.status(429).json({ error: `refused by ${e.limit}` })
    }
  })

  app.get('/quota', async (req, res) => {
    res.json((await llmGuard.peek({ user: req.get('x-user'), org: 'acme' })).remaining)
  })
  return app
}

/** A local stand-in for OpenAI's chat completions: every answer costs 2,000 input and 400 output tokens. */
function fakeOpenAI() {
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const { model } = JSON.parse(body)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          id: 'chatcmpl-local',
          object: 'chat.completion',
          created: 0,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the local model.' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 2_000, completion_tokens: 400, total_tokens: 2_400 },
        }),
      )
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

const listen = (handler) =>
  new Promise((resolve) => {
    const server = http.createServer(handler)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })

async function main() {
  let fake = null
  let openai
  if (process.env.OPENAI_API_KEY) {
    openai = new OpenAI()
  } else {
    fake = await fakeOpenAI()
    openai = new OpenAI({ apiKey: 'local', baseURL: `http://127.0.0.1:${fake.address().port}/v1` })
  }
  const server = await listen(app(openai))
  const url = `http://127.0.0.1:${server.address().port}`

  const ask = async (user, path, message) => {
    const init = message === undefined ? { headers: { 'x-user': user } } : { method: 'POST', headers: { 'x-user': user, 'content-type': 'application/json' }, body: JSON.stringify({ message }) }
    const res = await fetch(url + path, init)
    const body = await res.json()
    const retry = res.headers.get('retry-after')
    const what = res.status === 200 ? JSON.stringify(body.answer ?? body) : `${body.error ?? body['violated-policies']}${retry === null ? '' : `, retry in ${retry} s`}`
    console.log(`  ${user.padEnd(5)} ${(message === undefined ? `GET ${path}` : `POST ${path}`).padEnd(10)} → ${res.status} ${what}`)
    console.log(`        RateLimit: ${res.headers.get('ratelimit')}`)
  }

  try {
    console.log(`RateLimit-Policy of every response: ${(await fetch(`${url}/quota`, { headers: { 'x-user': 'probe' } })).headers.get('ratelimit-policy')}\n`)
    console.log('alice chats until her daily dollar budget refuses (the call never reaches the provider):')
    await ask('alice', '/chat', 'Hello!')
    await ask('alice', '/chat', 'Tell me more.')
    await ask('alice', '/chat', 'And more?')
    console.log('\nbob checks his quota too often: the HTTP layer refuses the fifth request in a minute:')
    for (let i = 0; i < 5; i++) await ask('bob', '/quota')
  } finally {
    await new Promise((r) => server.close(r))
    if (fake !== null) await new Promise((r) => fake.close(r))
    if (store instanceof RedisStore) await store.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
