// A separate Node process guarding calls against limits shared through one Redis: `callers`
// concurrent loops each acquire, hold the call for a few ms, and settle with the real usage,
// until a limit other than concurrency refuses. Prints what was admitted, when each admitted
// call was in flight (this machine's clock, shared by every process), and why callers stopped.
'use strict'
const { Guard, RedisStore } = require('../../lib/index.js')

const [url, prefix, callers] = process.argv.slice(2)
const { LIMITS } = require('./guard-limits.cjs')

async function main() {
  const store = new RedisStore(url, { commandTimeoutMs: 20_000 })
  const guard = new Guard({ store, prefix, limits: LIMITS })
  const ctx = { user: 'shared', org: 'acme', model: 'gpt-4o-mini' }
  const intervals = []
  const stops = {}
  let admitted = 0
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
  const caller = async (i) => {
    for (;;) {
      const d = await guard.acquire(ctx, { model: 'gpt-4o-mini', tokens: 100, maxTokens: 100 })
      if (!d.ok) {
        if (d.limit === 'conc') {
          await sleep(1 + (i % 3))
          continue
        }
        stops[d.limit] = (stops[d.limit] || 0) + 1
        return
      }
      admitted++
      const start = Date.now()
      await sleep(3 + (i % 5))
      const end = Date.now()
      intervals.push([start, end])
      // Settled below the estimate: 80 input + 50 output tokens.
      await d.settle({ inputTokens: 80, outputTokens: 50 })
    }
  }
  await Promise.all(Array.from({ length: Number(callers) }, (_, i) => caller(i)))
  process.stdout.write(JSON.stringify({ admitted, intervals, stops }))
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e))
  process.exit(1)
})
