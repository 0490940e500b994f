// A separate Node process sharing one Redis with the test: runs `calls` decisions of one kind
// at once and prints how many were admitted. It never closes its store, so it also proves a
// process exits on its own.
'use strict'
const { CostTracker, Quota, RateLimiter, RedisStore, TokenBudget } = require('../../lib/index.js')

const [kind, url, prefix, limit, calls] = process.argv.slice(2)
// Thousands of calls are sent at once by each of several processes: the last reply waits behind
// every command sent before it. These tests are about exact counts under load, not timeouts, so
// the store waits long enough for that queue even on a loaded machine.
const store = () => new RedisStore(url, { commandTimeoutMs: 20_000 })

async function main() {
  let results
  if (kind === 'consume') {
    const rl = new RateLimiter(store(), { maxRequests: Number(limit), windowSeconds: 60, prefix })
    results = await Promise.all(Array.from({ length: Number(calls) }, () => rl.consume('shared')))
  } else if (kind === 'reserve') {
    const b = new TokenBudget(store(), { maxTokens: Number(limit), prefix })
    results = (await Promise.all(Array.from({ length: Number(calls) }, () => b.reserve('shared', 7)))).map((r) => ({
      allowed: r.hold !== null,
    }))
  } else if (kind === 'quota') {
    // limit is "rpd,tpm,tokens": reserve on two keys at once and print the holds granted.
    const [rpd, tpm, tokens] = limit.split(',').map(Number)
    const quota = new Quota({ store: url, prefix, bufferMs: 0 })
    const keys = [
      { id: 'a', rpm: 60_000, tpm, rpd },
      { id: 'b', rpm: 60_000, tpm, rpd: rpd + 10 },
    ]
    // Each caller waits out RPM spacing (1 ms here) and tries again; RPD and TPM refusals end it.
    const attempt = async () => {
      for (;;) {
        const r = await quota.reserve('shared', keys, tokens)
        if (r.ok || r.reason !== 'rpm' || r.waitMs > 1_000) return r
        await new Promise((resolve) => setTimeout(resolve, r.waitMs))
      }
    }
    const got = await Promise.all(Array.from({ length: Number(calls) }, attempt))
    process.stdout.write(JSON.stringify(got.filter((r) => r.ok).map((r) => r.hold)))
    return
  } else if (kind === 'quota-load') {
    // limit is the RPD of each of 2 keys; TPM never binds, RPM spaces requests 1 ms apart per
    // key. Each call is one decision (a refusal is not retried). Print how many were admitted.
    const quota = new Quota({ store: store(), prefix, bufferMs: 0 })
    const keys = Array.from({ length: 2 }, (_, i) => ({ id: `k${i}`, rpm: 60_000, tpm: 1e12, rpd: Number(limit) }))
    // Four callers per process, each making its share of the decisions one after another.
    let admitted = 0
    const caller = async (n) => {
      for (let i = 0; i < n; i++) if ((await quota.reserve('shared', keys, 3)).ok) admitted++
    }
    await Promise.all(Array.from({ length: 4 }, () => caller(Number(calls) / 4)))
    process.stdout.write(JSON.stringify({ admitted }))
    return
  } else if (kind === 'spend-reserve') {
    // limit is the daily budget in USD: print the holds of `calls` concurrent $0.07 reservations.
    const t = new CostTracker(store(), { dailyBudget: Number(limit), monthlyBudget: null, prefix })
    const got = await Promise.all(Array.from({ length: Number(calls) }, () => t.reserve(0.07, { model: 'gpt-4o-mini' })))
    process.stdout.write(JSON.stringify(got.filter((r) => r.allowed).map((r) => r.hold)))
    return
  } else if (kind === 'spend-record') {
    // `calls` concurrent $0.01 records against a $10 daily budget; print the alerts this process fired.
    const alerts = []
    const t = new CostTracker(store(), { dailyBudget: Number(limit), monthlyBudget: null, prefix, alertThresholds: [0.1, 0.5, 0.9], onAlert: (_, a) => alerts.push(a.threshold) })
    await Promise.all(Array.from({ length: Number(calls) }, () => t.recordCost(0.01, { tags: { feature: 'batch' } })))
    process.stdout.write(JSON.stringify(alerts))
    return
  } else if (kind === 'check') {
    const rl = new RateLimiter(store(), { maxRequests: Number(limit), windowSeconds: 60, prefix })
    results = [await rl.check('shared')]
    process.stdout.write(JSON.stringify(results[0]))
    return
  }
  process.stdout.write(JSON.stringify({ admitted: results.filter((r) => r.allowed).length }))
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack))
  process.exit(1)
})
