'use strict'
// npm run bench: tollgate beside the libraries users would otherwise pick, in one run,
// reported as ratios. Starts its own redis-server on a free loopback port (or uses REDIS_URL).
//
// What is measured:
// 1. In-process: an awaited RateLimiter.consume on MemoryStore vs rate-limiter-flexible's
//    RateLimiterMemory.consume (both always admit: the limit is far away).
// 2. Redis: tollgate RateLimiter.consume on RedisStore vs RateLimiterRedis over ioredis vs a
//    JS reference of tekimax's check-then-record sequence over ioredis, one caller awaiting
//    each call (latency) and 256 callers at once (throughput).
//    Commands each call sends to Redis come from INFO commandstats.
// 3. Quota (rate-budget's engine): reserve + commit with two keys, in-process and on Redis.
// 4. Token counting (o200k_base): countTokens vs gpt-tokenizer, js-tiktoken and tiktoken
//    (WASM) on short, medium and long text, with each one's first-call time and memory,
//    measured in a fresh process.
// 5–6. Redis outage latency per onStoreError policy, and the blocked-key cache (outage.js).
// 7. The job limiter: jobs per second through queueJob, local and on Redis (jobs.js).
// 8. Semantic cache lookups at 1k/10k/100k entries × 384/1536 dimensions (semantic.js).
// 9. Quota at scale: reserve + commit with 2,000, 10,000 and 20,000 requests in the TPM
//    window, in-process and on Redis, with Redis's own time per script call (quota.js).
// 10. Bytes per live id of every class on a MemoryStore, 1M ids (memory.js).
// 11. The guard: one acquire + settle over five limits vs the same policy hand-built from the
//     single classes vs rate-limiter-flexible's RateLimiterUnion, in-process and on Redis, at
//     20 and 20,000 users and window entries (guard.js).
// 12. tollgate/openai's overhead per call against a local fake server, in-process and Redis
//     guard, beside the bare SDK call (integrations.js).
// 13. Leased limits: decisions per second across 4 processes on one Redis limit, leased vs
//     plain vs MemoryStore, round trips per 1,000 decisions, unused capacity and how fast an
//     idle process gives its lease back (leased.js).
//
// `npm run bench -- tokens` runs one section (limiter = 1–3, tokens, outage, jobs, semantic,
// quota, memory, guard, integrations, leased).

const os = require('node:os')
const path = require('node:path')
const Redis = require('ioredis')
const { RateLimiterMemory, RateLimiterRedis } = require('rate-limiter-flexible')
const { MemoryStore, Quota, RateLimiter, RedisStore } = require('../lib/index.js')
const { TekimaxRateLimiter } = require('./tekimax-reference.js')
const { startRedis } = require('./redis-server.js')

const QUICK = process.env.BENCH_QUICK === '1'



const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** ns per awaited call, one caller; median of rounds. */
async function sequential(fn, n, rounds = 5) {
  for (let i = 0; i < Math.min(n, 2000); i++) await fn(i) // warm up
  const times = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await fn(i)
    times.push(Number(process.hrtime.bigint() - t0) / n)
  }
  return median(times)
}

/** ops/s with `callers` loops running at once; median of rounds. */
async function concurrent(fn, callers, perCaller, rounds = 3) {
  const loop = async (c) => {
    for (let i = 0; i < perCaller; i++) await fn(c * perCaller + i)
  }
  await Promise.all(Array.from({ length: callers }, (_, c) => loop(c))) // warm up
  const rates = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    await Promise.all(Array.from({ length: callers }, (_, c) => loop(c)))
    rates.push((callers * perCaller) / (Number(process.hrtime.bigint() - t0) / 1e9))
  }
  return median(rates)
}

async function commandsPerCall(admin, fn, n) {
  await fn(0) // load scripts first
  await admin.config('RESETSTAT')
  for (let i = 0; i < n; i++) await fn(i)
  const info = await admin.info('commandstats')
  const counts = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== 'config' && m[1] !== 'info') counts[m[1]] = Number(m[2])
  return counts
}

const fmt = (x, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const ids = Array.from({ length: 1024 }, (_, i) => `user-${i}`)

async function main() {
  console.log(`tollgate benchmark — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0].model}`)
  console.log('')

  // ---- 1. in-process -------------------------------------------------------------------------
  const N = QUICK ? 50_000 : 300_000
  const ours = new RateLimiter(new MemoryStore(), { maxRequests: 10_000_000, windowSeconds: 60 })
  const theirs = new RateLimiterMemory({ points: 10_000_000, duration: 60 })
  const tMem = await sequential((i) => ours.consume(ids[i & 1023]), N)
  const rMem = await sequential((i) => theirs.consume(ids[i & 1023]), N)
  console.log('1. In-process limiter, awaited consume, one caller, 1,024 keys')
  console.log(`   tollgate RateLimiter (MemoryStore)           ${fmt(tMem)} ns/op`)
  console.log(`   rate-limiter-flexible RateLimiterMemory      ${fmt(rMem)} ns/op`)
  console.log(`   ratio tollgate / rate-limiter-flexible       ${fmt(tMem / rMem, 2)}×  (target ≤ 1.00×)`)
  console.log('')

  // ---- 2. Redis ------------------------------------------------------------------------------
  const server = await startRedis()
  try {
    const admin = new Redis(server.url)
    const ioredis = new Redis(server.url, { enableOfflineQueue: true })
    const store = new RedisStore(server.url)
    const prefix = `bench:${Date.now()}:`
    const tRedis = new RateLimiter(store, { maxRequests: 10_000_000, windowSeconds: 60, prefix: `${prefix}tg:` })
    const rRedis = new RateLimiterRedis({ storeClient: ioredis, points: 10_000_000, duration: 60, keyPrefix: `${prefix}rlf` })
    const tek = new TekimaxRateLimiter(ioredis, { maxRequests: 10_000_000, windowSeconds: 60, prefix: `${prefix}tek:` })
    const tekRequest = async (id) => {
      const { allowed } = await tek.check(id)
      if (allowed) await tek.record(id)
    }
    const M = QUICK ? 2_000 : 10_000
    const lat = {
      tollgate: await sequential((i) => tRedis.consume(ids[i & 1023]), M, 3),
      rlf: await sequential((i) => rRedis.consume(ids[i & 1023]), M, 3),
      tekimax: await sequential((i) => tekRequest(ids[i & 1023]), M / 2, 3),
    }
    const C = 256
    const per = QUICK ? 20 : 80
    const thr = {
      tollgate: await concurrent((i) => tRedis.consume(ids[i & 1023]), C, per),
      rlf: await concurrent((i) => rRedis.consume(ids[i & 1023]), C, per),
      tekimax: await concurrent((i) => tekRequest(ids[i & 1023]), C, per),
    }
    const K = 200
    const cmds = {
      tollgate: await commandsPerCall(admin, (i) => tRedis.consume(ids[i & 1023]), K),
      rlf: await commandsPerCall(admin, (i) => rRedis.consume(ids[i & 1023]), K),
      tekimax: await commandsPerCall(admin, (i) => tekRequest(`fresh-${i}`), K),
    }
    const clientSent = (c) => (c.evalsha ?? 0) + (c.eval ?? 0) + (c.get ?? 0) + (c.ttl ?? 0) + (c.incr ?? 0) + (c.expire ?? 0)
    const total = (c) => Object.values(c).reduce((a, b) => a + b, 0)

    console.log('2. Redis-backed limiter (redis-server on loopback), one consume per request')
    console.log('                                         latency, 1 caller   throughput, 256 callers   round trips/call   commands run/call')
    const row = (name, key) =>
      console.log(
        `   ${name.padEnd(36)} ${fmt(lat[key] / 1000, 1).padStart(10)} µs/op ${fmt(thr[key]).padStart(16)} ops/s ${fmt(clientSent(cmds[key]) / K, 2).padStart(14)} ${fmt(total(cmds[key]) / K, 2).padStart(18)}`,
      )
    row('tollgate RateLimiter (RedisStore)', 'tollgate')
    row('rate-limiter-flexible Redis+ioredis', 'rlf')
    row('tekimax sequence, ioredis (JS ref.)', 'tekimax')
    console.log(`   throughput ratio tollgate / rate-limiter-flexible   ${fmt(thr.tollgate / thr.rlf, 2)}×  (target ≥ 2.00×)`)
    console.log(`   throughput ratio tollgate / tekimax sequence        ${fmt(thr.tollgate / thr.tekimax, 2)}×`)
    console.log(`   latency ratio tollgate / rate-limiter-flexible      ${fmt(lat.tollgate / lat.rlf, 2)}×`)
    console.log(`   commands tollgate sends per call: ${JSON.stringify(Object.fromEntries(Object.entries(cmds.tollgate).filter(([k]) => k === 'evalsha' || k === 'eval').map(([k, v]) => [k, v / K])))} (target: exactly 1 EVALSHA)`)
    // With 256 callers, calls made in the same event-loop turn share one script call.
    await admin.config('RESETSTAT')
    const C2 = 256
    await Promise.all(Array.from({ length: C2 }, async (_, c) => {
      for (let i = 0; i < 20; i++) await tRedis.consume(ids[(c * 20 + i) & 1023])
    }))
    const shared = Number(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0)
    console.log(`   EVALSHA per call with 256 callers: ${fmt(shared / (C2 * 20), 3)} (calls in one event-loop turn share one script call)`)
    console.log('')
    // ---- 3. Quota -----------------------------------------------------------------------------
    const quotaKeys = [
      { id: 'key-a', rpm: 1e9, tpm: 1e15, rpd: 1e15, priority: 10 },
      { id: 'key-b', rpm: 1e9, tpm: 1e15, rpd: 1e15, priority: 5 },
    ]
    // bufferMs 0 and a huge rpm: spacing never blocks, so every call does the full work.
    const qMem = new Quota({ bufferMs: 0, holdTtlMs: null })
    const qRedis = new Quota({ store, bufferMs: 0, prefix: `${prefix}quota:`, holdTtlMs: null })
    const pair = (q, scopes) => async (i) => {
      const r = await q.reserve(scopes[i % scopes.length], quotaKeys, 100)
      await q.commit(r.hold, { tokens: 80 })
    }
    // Many scopes, so each keeps a realistic few dozen hits in its window.
    const scopes = Array.from({ length: 4096 }, (_, i) => `tenant-${i}`)
    const QN = QUICK ? 5_000 : 20_000
    const qm = await sequential(pair(qMem, scopes), QN, 3)
    const qmc = await concurrent(pair(qMem, scopes), 256, QUICK ? 10 : 40)
    const qr = await sequential(pair(qRedis, scopes), QUICK ? 500 : 2_000, 3)
    const qrc = await concurrent(pair(qRedis, scopes), 256, QUICK ? 5 : 20)
    const qcmds = await commandsPerCall(admin, pair(qRedis, scopes), 100)
    console.log('3. Quota reserve + commit, two keys, 4,096 scopes')
    console.log(`   MemoryStore, one caller          ${fmt(qm / 1000, 2)} µs per reserve+commit  (target ≤ 1 µs per reserve)`)
    console.log(`   MemoryStore, 256 callers         ${fmt(qmc)} pairs/s`)
    console.log(`   RedisStore, one caller           ${fmt(qr / 1000, 1)} µs per reserve+commit`)
    console.log(`   RedisStore, 256 callers          ${fmt(qrc)} pairs/s`)
    console.log(`   round trips per call on Redis    ${fmt((qcmds.evalsha ?? 0) / 200, 2)} (EVALSHA; target 1)`)
    console.log('')

    await store.close()
    ioredis.disconnect()
    admin.disconnect()
  } finally {
    await server.stop()
  }
}

/** ns per text of counting each of `texts` once. */
function perText(fn, texts) {
  const t0 = process.hrtime.bigint()
  for (const t of texts) fn(t)
  return Number(process.hrtime.bigint() - t0) / texts.length
}

/** ns per call of `fn(text)`; median of rounds. */
function perCall(fn, text, minMs = 300) {
  fn(text)
  const rounds = []
  for (let r = 0; r < 3; r++) {
    let n = 0
    const t0 = process.hrtime.bigint()
    let elapsed = 0
    while (elapsed < minMs * 1e6) {
      for (let i = 0; i < 10; i++) fn(text)
      n += 10
      elapsed = Number(process.hrtime.bigint() - t0)
    }
    rounds.push(elapsed / n)
  }
  return median(rounds)
}

const COUNTERS = {
  tollgate: `const t = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))}); return (s) => t.countTokens(s, 'o200k_base')`,
  'gpt-tokenizer': `const g = require('gpt-tokenizer/encoding/o200k_base'); return (s) => g.countTokens(s)`,
  'js-tiktoken': `const { Tiktoken } = require('js-tiktoken/lite'); const r = require('js-tiktoken/ranks/o200k_base'); const e = new Tiktoken(r.default ?? r); return (s) => e.encode(s).length`,
  'tiktoken (WASM)': `const { get_encoding } = require('tiktoken'); const e = get_encoding('o200k_base'); return (s) => e.encode(s, [], []).length`,
}

/** First call (require + load + one count) and the memory it took, in a fresh process. */
function firstCall(name) {
  const code = `
    const before = process.memoryUsage().rss
    const t0 = process.hrtime.bigint()
    const count = (() => { ${COUNTERS[name]} })()
    count('Hello, world!')
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    console.log(JSON.stringify({ ms, mb: (process.memoryUsage().rss - before) / 1048576 }))`
  const out = require('node:child_process').execFileSync(process.execPath, ['-e', code], { cwd: path.join(__dirname, '..'), encoding: 'utf8' })
  return JSON.parse(out)
}

function tokenBench() {
  const short = 'Summarise this ticket for the on-call engineer.' // ≈10 tokens
  const medium = 'The quick brown fox jumps over the lazy dog; 你好，世界 — fn main() { println!("{}", 42); } '.repeat(6) // ≈200
  const long = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. '.repeat(2_800) // ≈42k
  // Real documents do not repeat one sentence: ≈50k tokens of varied pseudo-words too, where a
  // tokenizer's cache of repeated words does not help.
  let seed = 7
  // 32-bit arithmetic (a product of doubles loses its low bits and the sequence cycles early).
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x80000000)
  const syllables = ['ka', 'lo', 'mi', 'ner', 'tu', 'vos', 'qua', 'shi', 'pra', 'dex', 'um', 'zor', 'fi', 'el', 'gon', 'rith']
  const words = []
  for (let i = 0; i < 22_000; i++) {
    let w = ''
    const n = 1 + Math.floor(rnd() * 4)
    for (let j = 0; j < n; j++) w += syllables[Math.floor(rnd() * syllables.length)]
    words.push(rnd() < 0.08 ? w + '.' : rnd() < 0.05 ? String(Math.floor(rnd() * 10_000)) : w)
  }
  const varied = words.join(' ')
  // Text no tokenizer has seen: words of random letters, each text counted once, so that no
  // cache of pieces (tollgate's, gpt-tokenizer's) answers from memory.
  const unseen = Array.from({ length: 3 }, () =>
    Array.from({ length: 20 }, () => {
      const ws = []
      for (let i = 0; i < 2_000; i++) {
        let w = ''
        const n = 3 + Math.floor(rnd() * 8)
        for (let j = 0; j < n; j++) w += String.fromCharCode(97 + Math.floor(rnd() * 26))
        ws.push(w)
      }
      return ws.join(' ')
    }),
  )
  const counters = Object.fromEntries(Object.entries(COUNTERS).map(([k, src]) => [k, new Function('require', src)(require)]))
  const sizes = { short, medium, long, varied }
  console.log('4. Token counting, o200k_base (counts identical across all four)')
  console.log(`   ${''.padEnd(18)} ${'short'.padStart(10)} ${'medium'.padStart(10)} ${'long rep.'.padStart(12)} ${'long varied'.padStart(12)} ${'unseen'.padStart(12)}   first call     memory`)
  const results = {}
  for (const [name, fn] of Object.entries(counters)) {
    // Time the sizes in order (short first), then take the counts: a tokenizer with a cache of
    // merges must not meet the long texts before the short ones are timed.
    const ns = Object.values(sizes).map((t) => perCall(fn, t, t.length > 10_000 ? 600 : 300))
    ns.push(median(unseen.map((texts) => perText(fn, texts))))
    const counts = Object.values(sizes).map((t) => fn(t))
    counts.push(unseen.flat().reduce((sum, t) => sum + fn(t), 0))
    results[name] = { counts, ns, first: firstCall(name) }
  }
  const reference = results.tollgate.counts
  for (const [name, r] of Object.entries(results)) {
    if (JSON.stringify(r.counts) !== JSON.stringify(reference)) console.log(`   ${name}: COUNTS DIFFER ${r.counts} vs ${reference}`)
    const [s, m, l, lv, u] = r.ns
    console.log(`   ${name.padEnd(18)} ${fmt(s / 1000, 2).padStart(7)} µs ${fmt(m / 1000, 1).padStart(7)} µs ${fmt(l / 1e6, 2).padStart(9)} ms ${fmt(lv / 1e6, 2).padStart(9)} ms ${fmt(u / 1e6, 2).padStart(9)} ms   ${fmt(r.first.ms, 0).padStart(6)} ms ${fmt(r.first.mb, 0).padStart(7)} MB`)
  }
  const others = Object.keys(results).filter((k) => k !== 'tollgate')
  for (const [i, size] of ['short', 'medium', 'long repetitive', 'long varied', 'unseen'].entries()) {
    const best = Math.min(...others.map((k) => results[k].ns[i]))
    console.log(`   ${size}: tollgate is ${fmt(best / results.tollgate.ns[i], 2)}× the fastest other (target ≥ 2×)`)
  }
  console.log(`   counts (short, medium, long repetitive, long varied, all unseen texts): ${reference.join(', ')}`)
  console.log(`   unseen: ${unseen[0].length} texts of ${fmt(unseen[0][0].length)} characters of random letters, each counted once (time per text)`)
  const run = 'a'.repeat(100_000)
  const t0 = process.hrtime.bigint()
  counters.tollgate(run)
  console.log(`   100,000 repeated characters: ${fmt(Number(process.hrtime.bigint() - t0) / 1e6, 1)} ms with tollgate (the WASM tokenizer takes ~12 s)`)
  console.log('')
}

// `npm run bench -- tokens jobs` runs only those sections; no names, all of them.
const SECTIONS = {
  limiter: main,
  tokens: tokenBench,
  outage: () => require('./outage.js').outageBench().then(() => require('./outage.js').requestBench()),
  jobs: () => require('./jobs.js').jobsBench(),
  semantic: () => require('./semantic.js').semanticBench(),
  quota: () => require('./quota.js').quotaScaleBench(),
  memory: () => require('./memory.js').memoryBench(),
  guard: () => require('./guard.js').guardBench(),
  integrations: () => require('./integrations.js').integrationsBench(),
  leased: () => require('./leased.js').leasedBench(),
}
const wanted = process.argv.slice(2)
for (const name of wanted) {
  if (!(name in SECTIONS)) {
    console.error(`unknown section ${name}; the sections: ${Object.keys(SECTIONS).join(', ')}`)
    process.exit(2)
  }
}
Object.entries(SECTIONS)
  .filter(([name]) => wanted.length === 0 || wanted.includes(name))
  .reduce((done, [, run]) => done.then(run), Promise.resolve())
  .catch((e) => {
    console.error(e)
    process.exit(1)
  })
