// A separate Node process running createLLMRateLimiter on a shared Redis (jobs-redis.test.ts).
//   burst <url> <prefix> <tpm> <rpm> <calls> <estimate> [maxWaitMs] [clockOffsetMs]: queues
//     `calls` jobs at once (waiting up to maxWaitMs, default 0, per job; the limiter's clock is
//     Date.now() + clockOffsetMs when given) and prints when each admitted job started.
//   hold <url> <prefix> <maxConcurrent> [tokensPerDay estimate]: fills the model's concurrency
//     with jobs that never end (each estimating `estimate` tokens against the day's
//     `tokensPerDay`, when given), prints "held", and waits to be killed.
'use strict'
const { createLLMRateLimiter, createRedisBackend } = require('../../lib/index.js')

const [kind, url, prefix, ...rest] = process.argv.slice(2)

async function main() {
  if (kind === 'burst') {
    const [tpm, rpm, calls, est, maxWait = 0, offset] = rest.map(Number)
    const now = offset === undefined ? Date.now : () => Date.now() + offset
    const limiter = createLLMRateLimiter({
      models: { m: { tokensPerMinute: tpm, requestsPerMinute: rpm } },
      resourceEstimationsPerJob: { s: { estimatedUsedTokens: est, estimatedNumberOfRequests: 1, maxWaitMS: { m: maxWait } } },
      now: offset === undefined ? undefined : now,
      backend: createRedisBackend({ url, keyPrefix: prefix, heartbeatIntervalMs: 1000, instanceTimeoutMs: 5000 }),
      ratioAdjustmentConfig: { minJobTypeCapacity: calls },
    })
    await limiter.start()
    const admitted = []
    const job = async () => {
      admitted.push(now())
      await new Promise((r) => setTimeout(r, 5))
      return { requestCount: 1, inputTokens: est, cachedTokens: 0, outputTokens: 0, data: null }
    }
    await Promise.allSettled(Array.from({ length: calls }, (_, i) => limiter.queueJob({ jobId: `${process.pid}-${i}`, job })))
    await limiter.stop()
    process.stdout.write(JSON.stringify({ admitted }))
  } else if (kind === 'hold') {
    const [conc, tpd, est] = rest.map(Number)
    const limiter = createLLMRateLimiter({
      models: { m: tpd ? { maxConcurrentRequests: conc, tokensPerDay: tpd } : { maxConcurrentRequests: conc } },
      ...(est ? { resourceEstimationsPerJob: { s: { estimatedUsedTokens: est, estimatedNumberOfRequests: 1 } } } : {}),
      backend: createRedisBackend({ url, keyPrefix: prefix, heartbeatIntervalMs: 50, instanceTimeoutMs: 300 }),
    })
    await limiter.start()
    let started = 0
    for (let i = 0; i < conc; i++) {
      limiter.queueJob({ jobId: `h${i}`, job: () => new Promise(() => started++) }).catch(() => {})
    }
    const check = setInterval(() => {
      if (started === conc) {
        process.stdout.write('held\n')
        clearInterval(check)
        setTimeout(() => process.exit(0), 20_000) // stay alive until killed (at most 20 s)
      }
    }, 5)
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack))
  process.exit(1)
})
