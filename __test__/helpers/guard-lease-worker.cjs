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
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function main() {
  if (kind === 'hold') {
    const d = await guard.acquire({}, request)
    process.stdout.write(`held ${guard.stats().lease.rpw.units} ${d.ok}\n`)
    await sleep(60_000)
    return
  }
  const admitted = []
  const end = Date.now() + Number(durationMs)
  const gap = Number(rate) > 0 ? 1000 / Number(rate) : 0
  let next = Date.now()
  let refused = 0
  let k = 0
  while (Date.now() < end) {
    if (kind === 'tokens') {
      const out = k++ % 31
      const d = await guard.acquire({}, { ...request, maxTokens: out })
      if (d.ok) {
        const used = 10 + Math.floor(out / 2)
        admitted.push([last, used])
        await d.settle({ inputTokens: 10, outputTokens: Math.floor(out / 2) })
      } else refused++
      if (!d.ok || admitted.length % 64 === 0) await new Promise((r) => setImmediate(r))
      continue
    }
    const d = await guard.acquire({}, request)
    if (d.ok) {
      admitted.push(last)
      await d.settle(usage)
    } else refused++
    if (gap > 0) {
      next += gap
      const wait = next - Date.now()
      if (wait > 0) await sleep(wait)
    } else if (!d.ok || admitted.length % 64 === 0) {
      await new Promise((r) => setImmediate(r)) // let timers (lease returns) run
    }
  }
  await guard.close()
  const calls = guard.stats().redisCalls
  await store.close()
  process.stdout.write(JSON.stringify({ admitted, refused, calls }))
}

main().catch((e) => {
  process.stderr.write(String((e && e.stack) || e))
  process.exit(1)
})
