// A process on a Guard with a leased limit (docs/leases.md), for
// __test__/guard-lease-processes.test.ts.
//   run <url> <prefix> <max> <windowMs> <ratePerSecond|0 = as fast as it can> <durationMs>
//     acquires (and settles) at that rate and prints the time of every admitted decision, as
//     the guard counted it (the store's clock is Date.now(), read through here, so the time of
//     a decision is the last one read before it resolves).
//   tokens <url> <prefix> <max> <windowMs> <ratePerSecond|0> <durationMs>
//     as run, on a leased token limit of <max> tokens per window: each call estimates 10 + a
//     varying 0–30 output tokens and settles below its estimate; prints [time, tokens] pairs.
//   hold <url> <prefix> <max> <windowMs>
//     takes a lease with one decision, prints "held <lease units> <ok>" and waits to be killed.
'use strict'
const { Guard, RedisStore } = require('../../lib/index.js')

const [kind, url, prefix, max, windowMs, rate, durationMs] = process.argv.slice(2)
let last = 0
const store = new RedisStore(url, { commandTimeoutMs: 10_000, now: () => (last = Date.now()) })
const limit = kind === 'tokens' ? { id: 'tpw', tokens: Number(max) } : { id: 'rpw', requests: Number(max) }
const guard = new Guard({ store, prefix, limits: [{ ...limit, scope: 'shared', per: Number(windowMs), lease: true }] })
const request = { model: 'gpt-4o-mini', tokens: 10, maxTokens: 10 }
const usage = { inputTokens: 10, outputTokens: 5 }
const { paced, sleep } = require('./paced.cjs')

async function main() {
  if (kind === 'hold') {
    const d = await guard.acquire({}, request)
    process.stdout.write(`held ${guard.stats().lease.rpw.units} ${d.ok}\n`)
    await sleep(60_000)
    return
  }
  const admitted = []
  let refused = 0
  await paced(Number(rate), Number(durationMs), async (k) => {
    if (kind === 'tokens') {
      const out = k % 31
      const d = await guard.acquire({}, { ...request, maxTokens: out })
      if (d.ok) {
        admitted.push([last, 10 + Math.floor(out / 2)])
        await d.settle({ inputTokens: 10, outputTokens: Math.floor(out / 2) })
      } else refused++
      return d.ok
    }
    const d = await guard.acquire({}, request)
    if (d.ok) {
      admitted.push(last)
      await d.settle(usage)
    } else refused++
    return d.ok
  })
  await guard.close()
  const calls = guard.stats().redisCalls
  await store.close()
  process.stdout.write(JSON.stringify({ admitted, refused, calls }))
}

main().catch((e) => {
  process.stderr.write(String((e && e.stack) || e))
  process.exit(1)
})
