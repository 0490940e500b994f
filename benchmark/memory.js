'use strict'
// Section 10 of `npm run bench`: bytes per live id of every class on a MemoryStore. Each class
// runs in a fresh process that makes one call for each of 1,000,000 ids (BENCH_QUICK=1:
// 100,000) and reports the growth of the process's resident memory divided by the ids, then
// the resident memory left after `clear()` (memory handed back to the system).
// `TOLLGATE_LIB=/path/to/lib` measures another build of tollgate (a before/after comparison).

const { execFileSync } = require('node:child_process')
const path = require('node:path')

const LIB = process.env.TOLLGATE_LIB || path.join(__dirname, '..', 'lib')
const IDS = process.env.BENCH_QUICK === '1' ? 100_000 : 1_000_000

// Each case: the setup, then `one(i)` — one call that makes id i live.
const CASES = {
  RateLimiter: ['const c = new t.RateLimiter(store, { maxRequests: 5, windowSeconds: 3600 })', 'c.consume("tenant-" + i)'],
  'RateLimiter, maxKeys 100,000': ['const c = new t.RateLimiter(store, { maxRequests: 5, windowSeconds: 3600 })', 'c.consume("tenant-" + i)', '{ maxKeys: 100000 }'],
  TokenBudget: ['const c = new t.TokenBudget(store, { maxTokens: 1e6 })', 'c.record("tenant-" + i, 100)'],
  ResponseCache: ['const c = new t.ResponseCache(store, { keyFn: (m) => m })', 'c.set("req-" + i, [], "ok")'],
  SessionStore: ['const c = new t.SessionStore(store)', 'c.save("sess-" + i, { messages: [] })'],
  ProviderLimiter: ['const c = new t.ProviderLimiter(store, { providers: { openai: { points: 100, duration: 3600 } } })', 'c.tryConsume("openai", "tenant-" + i)'],
  Quota: ['const c = new t.Quota({ store }); const keys = [{ id: "k", rpm: 1e6, tpm: 1e9, rpd: 1e9 }]', 'c.reserve("tenant-" + i, keys, 10)'],
}

function measure(name) {
  const [setup, one, storeOptions = '{}'] = CASES[name]
  const code = `
    const t = require(${JSON.stringify(LIB)})
    const store = new t.MemoryStore(${storeOptions})
    ${setup}
    const rss = () => { global.gc(); return process.memoryUsage().rss }
    const before = rss()
    const t0 = process.hrtime.bigint()
    ;(async () => {
      for (let i = 0; i < ${IDS}; i++) await ${one}
      const s = Number(process.hrtime.bigint() - t0) / 1e9
      const after = rss()
      const live = store.size()
      store.clear()
      const cleared = rss()
      console.log(JSON.stringify({ perId: (after - before) / ${IDS}, live, s, mb: (after - before) / 1048576, backMb: (after - cleared) / 1048576 }))
    })()`
  const out = execFileSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '-e', code], { encoding: 'utf8', maxBuffer: 1 << 20 })
  return JSON.parse(out.trim().split('\n').pop())
}

function memoryBench() {
  const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
  console.log(`10. Memory per live id, MemoryStore, ${fmt(IDS)} ids (resident memory growth / ids; each class in a fresh process)`)
  console.log(`   ${''.padEnd(30)} ${'bytes/id'.padStart(9)} ${'live keys'.padStart(10)} ${'total'.padStart(9)} ${'back after clear()'.padStart(19)}`)
  for (const name of Object.keys(CASES)) {
    let r
    try {
      r = measure(name)
    } catch (e) {
      console.log(`   ${name.padEnd(30)} failed: ${String(e.message).split('\n')[0]}`)
      continue
    }
    console.log(`   ${name.padEnd(30)} ${fmt(r.perId).padStart(9)} ${fmt(r.live).padStart(10)} ${(fmt(r.mb) + ' MB').padStart(9)} ${(fmt(r.backMb) + ' MB').padStart(19)}`)
  }
  console.log('')
}

module.exports = { memoryBench }

if (require.main === module) memoryBench()
