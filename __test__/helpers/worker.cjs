// A separate Node process sharing one Redis with the test: runs `calls` decisions of one kind
// at once and prints how many were admitted. It never closes its store, so it also proves a
// process exits on its own.
'use strict'
const { Quota, RateLimiter, TokenBudget } = require('../../lib/index.js')

const [kind, url, prefix, limit, calls] = process.argv.slice(2)

async function main() {
  let results
  if (kind === 'consume') {
    const rl = new RateLimiter(url, { maxRequests: Number(limit), windowSeconds: 60, prefix })
    results = await Promise.all(Array.from({ length: Number(calls) }, () => rl.consume('shared')))
  } else if (kind === 'reserve') {
    const b = new TokenBudget(url, { maxTokens: Number(limit), prefix })
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
  } else if (kind === 'check') {
    const rl = new RateLimiter(url, { maxRequests: Number(limit), windowSeconds: 60, prefix })
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
