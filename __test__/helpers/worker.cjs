// A separate Node process sharing one Redis with the test: runs `calls` decisions of one kind
// at once and prints how many were admitted. It never closes its store, so it also proves a
// process exits on its own.
'use strict'
const { RateLimiter, TokenBudget } = require('../../lib/index.js')

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
