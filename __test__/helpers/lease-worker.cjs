// A process on a leased RateLimiter (docs/leases.md), for __test__/lease-processes.test.ts.
//   run <url> <prefix> <max> <windowMs> <ratePerSecond|0 = as fast as it can> <durationMs>
//     consumes at that rate and prints the time of every admitted decision, as the limiter
//     counted it (the store's clock is Date.now(), read through here, so the time of a decision
//     is the last one read before it resolves).
//   exit <url> <prefix> <max> <windowMs>
//     takes a lease with one decision, prints "<lease units> <allowed>" and ends without closing.
//   hold <url> <prefix> <max> <windowMs>
//     takes a lease with one decision, prints "held <lease units>" and waits to be killed.
'use strict'
const { RateLimiter, RedisStore } = require('../../lib/index.js')

const [kind, url, prefix, max, windowMs, rate, durationMs] = process.argv.slice(2)
let last = 0
const store = new RedisStore(url, { commandTimeoutMs: 10_000, now: () => (last = Date.now()) })
const rl = new RateLimiter(store, { maxRequests: Number(max), windowSeconds: Number(windowMs) / 1000, prefix, lease: true })
const { paced, sleep } = require('./paced.cjs')

async function main() {
  if (kind === 'exit') {
    // Takes a lease and ends without close(): the lease goes back on 'beforeExit', and no
    // timer or connection keeps the process alive.
    const r = await rl.consume('shared')
    process.stdout.write(`${rl.stats().lease.units} ${r.allowed}`)
    return
  }
  if (kind === 'hold') {
    const r = await rl.consume('shared')
    process.stdout.write(`held ${rl.stats().lease.units} ${r.allowed}\n`)
    await sleep(60_000)
    return
  }
  const admitted = []
  let refused = 0
  await paced(Number(rate), Number(durationMs), async () => {
    const r = await rl.consume('shared')
    if (r.allowed) admitted.push(last)
    else refused++
    return r.allowed
  })
  await rl.close()
  const calls = rl.stats().redisCalls
  await store.close()
  process.stdout.write(JSON.stringify({ admitted, refused, calls }))
}

main().catch((e) => {
  process.stderr.write(String((e && e.stack) || e))
  process.exit(1)
})
