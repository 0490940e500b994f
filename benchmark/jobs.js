'use strict'
// Job limiter benchmark (npm run bench calls it last; also `node benchmark/jobs.js`):
// jobs per second through createLLMRateLimiter.queueJob with an instant job, local and on
// Redis; the limiter's overhead per job in µs (against awaiting the same job directly); and
// the Redis round trips per job (EVALSHA calls counted by INFO commandstats).

const os = require('node:os')
const Redis = require('ioredis')
const { startRedis } = require('./redis-server.js')
const { createLLMRateLimiter, createRedisBackend, RedisStore } = require('../lib/index.js')

const QUICK = process.env.BENCH_QUICK === '1'
const fmt = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const models = {
  a: { tokensPerMinute: 1e12, requestsPerMinute: 1e12, tokensPerDay: 1e13, requestsPerDay: 1e13, maxConcurrentRequests: 1e6, pricing: { input: 2.5, cached: 1.25, output: 10 } },
}
const types = { chat: { estimatedUsedTokens: 1000, estimatedNumberOfRequests: 1 } }
const result = { requestCount: 1, inputTokens: 800, cachedTokens: 0, outputTokens: 200, data: null }
const instant = () => result
let seq = 0
const opts = { jobId: 'j', jobType: 'chat', job: instant }

/** ns per awaited call, one caller; median of rounds. */
async function sequential(fn, n, rounds = 5) {
  for (let i = 0; i < Math.min(n, 2000); i++) await fn()
  const times = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await fn()
    times.push(Number(process.hrtime.bigint() - t0) / n)
  }
  return median(times)
}

async function concurrent(fn, callers, per) {
  const loop = async () => {
    for (let i = 0; i < per; i++) await fn()
  }
  await Promise.all(Array.from({ length: callers }, loop))
  const t0 = process.hrtime.bigint()
  await Promise.all(Array.from({ length: callers }, loop))
  return (callers * per) / (Number(process.hrtime.bigint() - t0) / 1e9)
}

async function jobsBench() {
  console.log('7. Job limiter (createLLMRateLimiter.queueJob), instant job, one model with every limit set')
  const local = createLLMRateLimiter({ models, resourceEstimationsPerJob: types, ratioAdjustmentConfig: { minJobTypeCapacity: 1e6 } })
  const N = QUICK ? 50_000 : 300_000
  const base = await sequential(async () => instant(), N)
  const ns = await sequential(() => local.queueJob(opts), N)
  console.log(`   local: ${fmt(1e9 / ns)} jobs/s awaited one by one; overhead ${fmt((ns - base) / 1000, 2)} µs/job (target < 5 µs)`)
  const rate = await concurrent(() => local.queueJob(opts), 64, QUICK ? 500 : 2000)
  console.log(`   local: ${fmt(rate)} jobs/s with 64 callers`)
  await local.stop()
  const server = await startRedis()
  const store = new RedisStore(server.url)
  try {
    const remote = createLLMRateLimiter({ models, resourceEstimationsPerJob: types, backend: createRedisBackend({ client: store, keyPrefix: `bench:${seq++}:` }), ratioAdjustmentConfig: { minJobTypeCapacity: 1e6 } })
    await remote.start()
    const M = QUICK ? 2_000 : 10_000
    const rns = await sequential(() => remote.queueJob(opts), M, 3)
    const rrate = await concurrent(() => remote.queueJob(opts), 64, QUICK ? 50 : 200)
    const admin = new Redis(server.url)
    await admin.config('RESETSTAT')
    const K = 1000
    for (let i = 0; i < K; i++) await remote.queueJob(opts)
    const info = await admin.info('commandstats')
    // Client round trips are the EVALSHA calls; the commands a script runs inside count apart.
    let trips = 0
    let inside = 0
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      if (m[1] === 'evalsha' || m[1] === 'eval') trips += Number(m[2])
      else if (m[1] !== 'config' && m[1] !== 'info') inside += Number(m[2])
    }
    admin.disconnect()
    console.log(`   Redis: ${fmt(1e9 / rns)} jobs/s awaited one by one (${fmt(rns / 1000, 1)} µs/job); ${fmt(rrate)} jobs/s with 64 callers`)
    console.log(`   Redis: ${fmt(trips / K, 2)} round trips (EVALSHA) per job, ${fmt(inside / K, 1)} commands run inside the scripts (heartbeats included)`)
    await remote.stop()
  } finally {
    await store.close()
    await server.stop()
  }
  console.log('')
}

module.exports = { jobsBench }
if (require.main === module) {
  jobsBench().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
