'use strict'
// Integrations benchmark (`npm run bench -- integrations`): what tollgate/openai's guarded
// client adds per chat.completions.create call, beside the bare `openai` SDK call, both against
// a local node:http server (in a child process, as a provider is) speaking OpenAI's chat
// completions wire format (JSON and SSE with the usage chunk), non-streaming and streaming; with an in-process guard (MemoryStore) and a
// Redis guard (its own redis-server on loopback, or REDIS_URL). Prints µs per call, the
// overhead as % of the bare call (the target: < 5% with the in-process guard) and the Redis
// round trips per guarded call: the script calls redis-server ran for them (INFO commandstats),
// beside the guard's own count (stats().redisCalls) and the commands the scripts ran.
// Timings are printed, never asserted. BENCH_INTEGRATIONS_CALLS=n runs one round of n calls
// (the smoke test runs a handful).

const http = require('node:http')
const os = require('node:os')
const Redis = require('ioredis')
const OpenAI = require('openai')
const { Guard, MemoryStore, RedisStore } = require('../lib/index.js')
const { guardOpenAI } = require('../lib/integrations/openai.js')
const { startRedis } = require('./redis-server.js')

const QUICK = process.env.BENCH_QUICK === '1'
const TINY = Number(process.env.BENCH_INTEGRATIONS_CALLS) || 0
const BATCH = TINY || 50
const ROUNDS = TINY ? 1 : QUICK ? 10 : 40
const fmt = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const USAGE = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } }

/** OpenAI's chat completions on loopback: a JSON answer, or SSE chunks (+ usage chunk when asked) and [DONE]. */
function serveFakeOpenAI() {
  const server = http.createServer((req, res) => {
    const parts = []
    req.on('data', (c) => parts.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString())
      const base = { id: 'chatcmpl-bench', created: 1_764_000_000, model: body.model, system_fingerprint: 'fp_1', service_tier: 'default' }
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!', refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }], usage: USAGE }))
        return
      }
      const withUsage = body.stream_options && body.stream_options.include_usage
      const chunk = (choices, usage) => `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices, ...(withUsage ? { usage } : {}) })}\n\n`
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(
        chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], null) +
          chunk([{ index: 0, delta: { content: 'Hello!' }, logprobs: null, finish_reason: null }], null) +
          chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], null) +
          (withUsage ? chunk([], USAGE) : '') +
          'data: [DONE]\n\n',
      )
      res.end()
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

/**
 * The fake provider in a process of its own, as a real provider is: its CPU does not share the
 * caller's event loop, so what the bench measures is the caller's time alone. Resolves to
 * `{ port, close }`.
 */
function fakeOpenAI() {
  const { fork } = require('node:child_process')
  const child = fork(__filename, ['--serve'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('message', (port) =>
      resolve({
        port,
        close: () => new Promise((r) => (child.once('exit', r), child.kill())),
      }),
    )
  })
}

// Limits far away (every call is admitted), one of each kind a chat app sets per user and org.
const limits = () => [
  { id: 'user-rpm', scope: (ctx) => ctx.user, requests: 1e9, per: '1m' },
  { id: 'user-tokens', scope: (ctx) => ctx.user, tokens: 1e12, per: 'day' },
  { id: 'org-usd', scope: (ctx) => ctx.org, usd: 1e6, per: 'month' },
]

const messages = [{ role: 'user', content: 'Say hello in one word.' }]
const users = Array.from({ length: 64 }, (_, i) => `user-${i}`)

/** One call, read to its end: the answer's text, or every chunk of the stream. */
function caller(client, stream, guarded) {
  const at = (i) => (guarded ? client.withContext({ user: users[i & 63], org: 'acme' }) : client)
  if (!stream) {
    return async (i) => {
      const c = await at(i).chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 20 })
      if (c.choices[0].message.content !== 'Hello!') throw new Error('unexpected answer')
    }
  }
  // The bare call asks for the usage chunk too, as the wrapper does for a caller that did not:
  // both read the same bytes.
  const options = guarded ? {} : { stream_options: { include_usage: true } }
  return async (i) => {
    const s = await at(i).chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 20, stream: true, ...options })
    let text = ''
    for await (const chunk of s) text += chunk.choices[0]?.delta?.content ?? ''
    if (text !== 'Hello!') throw new Error('unexpected stream')
  }
}

/**
 * µs per awaited call of each variant, and each variant's time over the first's (the bare call).
 * Short batches, the variants back to back in each round and their order turned every round,
 * so that a drift of a shared machine hits them alike; the medians of the rounds.
 */
async function interleaved(variants, batch, rounds) {
  const names = Object.keys(variants)
  for (const fn of Object.values(variants)) for (let i = 0; i < Math.min(batch * 2, 200); i++) await fn(i) // warm up
  const times = Object.fromEntries(names.map((k) => [k, []]))
  const ratios = Object.fromEntries(names.map((k) => [k, []]))
  for (let r = 0; r < rounds; r++) {
    const t = {}
    for (const name of r % 2 === 0 ? names : [...names].reverse()) {
      const fn = variants[name]
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < batch; i++) await fn(r * batch + i)
      t[name] = Number(process.hrtime.bigint() - t0) / batch / 1000
      times[name].push(t[name])
    }
    for (const name of names) ratios[name].push(t[name] / t[names[0]])
  }
  return { us: Object.fromEntries(names.map((k) => [k, median(times[k])])), ratio: Object.fromEntries(names.map((k) => [k, median(ratios[k])])) }
}

async function integrationsBench() {
  console.log(`tollgate/openai overhead — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0].model}`)
  const fake = await fakeOpenAI()
  const redis = await startRedis()
  const redisStore = new RedisStore(redis.url)
  const admin = new Redis(redis.url)
  try {
    const sdk = new OpenAI({ apiKey: 'local', baseURL: `http://127.0.0.1:${fake.port}/v1`, maxRetries: 0 })
    const prefix = `bench:integrations:${Date.now()}:`
    const memGuard = new Guard({ store: new MemoryStore(), limits: limits() })
    const redisGuard = new Guard({ store: redisStore, prefix, limits: limits() })
    const memClient = guardOpenAI(sdk, memGuard)
    const redisClient = guardOpenAI(sdk, redisGuard)

    console.log(`OpenAI wrapper (tollgate/openai) per chat.completions.create against a local fake server, one caller, ${ROUNDS} rounds × ${BATCH} calls of each`)
    console.log('                                         µs/call   overhead vs bare   Redis round trips/call')
    for (const stream of [false, true]) {
      const { us: t, ratio } = await interleaved(
        { bare: caller(sdk, stream, false), memory: caller(memClient, stream, true), redis: caller(redisClient, stream, true) },
        BATCH,
        ROUNDS,
      )
      // Round trips over a fresh run of calls: the script calls redis-server ran, and the guard's count.
      const K = Math.min(BATCH * ROUNDS, 200)
      const before = redisGuard.stats().redisCalls
      const call = caller(redisClient, stream, true)
      await admin.config('RESETSTAT')
      for (let i = 0; i < K; i++) await call(i)
      const info = await admin.info('commandstats')
      // Script calls are the round trips; the commands they run inside Redis are counted apart.
      let scripts = 0
      let commands = 0
      for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (m[1] === 'config' || m[1] === 'info') continue
        if (/^(evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro)$/.test(m[1])) scripts += Number(m[2])
        else commands += Number(m[2])
      }
      const trips = scripts / K
      const counted = (redisGuard.stats().redisCalls - before) / K
      // The overhead: the median over rounds of (guarded / bare in the same round) - 1.
      const pct = (r) => `${r >= 1 ? '+' : ''}${fmt((r - 1) * 100, 1)}%`
      const kind = stream ? 'streaming' : 'non-streaming'
      console.log(`   ${`bare openai SDK, ${kind}`.padEnd(36)} ${fmt(t.bare, 1).padStart(8)}   ${'—'.padStart(16)}   ${'—'.padStart(22)}`)
      console.log(`   ${`guarded, in-process, ${kind}`.padEnd(36)} ${fmt(t.memory, 1).padStart(8)}   ${pct(ratio.memory).padStart(16)}   ${'0'.padStart(22)}`)
      console.log(`   ${`guarded, Redis, ${kind}`.padEnd(36)} ${fmt(t.redis, 1).padStart(8)}   ${pct(ratio.redis).padStart(16)}   ${fmt(trips, 2).padStart(22)}`)
      console.log(`   ratio in-process guarded / bare, ${kind}: ${fmt(ratio.memory, 3)}×  (target < 1.05×)`)
      console.log(`   Redis, ${kind}: ${fmt(counted, 2)} script calls per call by the guard's stats().redisCalls, ${fmt(commands / K, 1)} commands run inside them`)
    }
    console.log('')
  } finally {
    admin.disconnect()
    await redisStore.close()
    await redis.stop()
    await fake.close()
  }
}

/**
 * `--count <bare|memory> <0|1 streaming> <warm-up calls> <calls>`, for
 * benchmark/integrations-count.sh: one variant against the fake server in its own process;
 * after the warm-up, prints `ready` and waits for SIGUSR2 (the script turns callgrind's
 * counting on then), makes the calls and exits. What callgrind counts is the calls alone, in
 * the steady state: instructions, which a loaded machine does not change.
 */
async function countVariant(variant, stream, warm, calls) {
  const fake = await fakeOpenAI()
  try {
    const sdk = new OpenAI({ apiKey: 'local', baseURL: `http://127.0.0.1:${fake.port}/v1`, maxRetries: 0 })
    const guarded = variant === 'memory'
    const client = guarded ? guardOpenAI(sdk, new Guard({ store: new MemoryStore(), limits: limits() })) : sdk
    const call = caller(client, stream, guarded)
    for (let i = 0; i < warm; i++) await call(i)
    const go = new Promise((resolve) => process.once('SIGUSR2', resolve))
    process.stdout.write('ready\n')
    await go
    for (let i = 0; i < calls; i++) await call(warm + i)
  } finally {
    await fake.close()
  }
}

module.exports = { integrationsBench }

if (require.main === module && process.argv[2] === '--serve') {
  serveFakeOpenAI().then((server) => process.send(server.address().port))
} else if (require.main === module && process.argv[2] === '--count') {
  const [variant, stream, warm, calls] = process.argv.slice(3)
  countVariant(variant, stream === '1', Number(warm), Number(calls)).catch((e) => {
    console.error(e)
    process.exit(1)
  })
} else if (require.main === module) {
  integrationsBench().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
