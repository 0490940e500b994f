// The decision loop of the lease test workers (lease-worker.cjs, guard-lease-worker.cjs).
'use strict'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Calls `decide(n)` (resolving to true when admitted) for `durationMs`: `rate` times a second,
 * or with `rate` 0 as fast as it can, yielding to timers (lease returns) after a refusal and
 * every 64 calls.
 */
async function paced(rate, durationMs, decide) {
  const end = Date.now() + durationMs
  const gap = rate > 0 ? 1000 / rate : 0
  let next = Date.now()
  let n = 0
  while (Date.now() < end) {
    const ok = await decide(n++)
    if (gap > 0) {
      next += gap
      const wait = next - Date.now()
      if (wait > 0) await sleep(wait)
    } else if (!ok || n % 64 === 0) {
      await new Promise((r) => setImmediate(r))
    }
  }
}

module.exports = { paced, sleep }
