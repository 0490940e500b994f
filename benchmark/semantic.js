'use strict'
// Semantic cache lookups: SemanticCache.get on a MemoryStore (exact-request check, then the
// Rust index: sign-code scan + exact rescoring) beside the same index forced to an exact scan,
// and beside the cost patterns article's approach without its Redis round trips: a JavaScript loop computing
// cosine similarity against every cached vector. Vectors are random; each question is a
// stored vector plus noise (similarity ≈ 0.95–0.99), as a cache hit is. Recall = share of
// questions whose best entry is the one the exact scan finds.
//
// SEMANTIC_BENCH_SIZES=1000,10000 limits the sizes (default 1k, 10k, 100k);
// BENCH_QUICK=1 runs 1k and 10k only.

const { MemoryStore, SemanticCache } = require('../lib/index.js')

function rng(seed) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 4294967296 - 0.5
  }
}

/** The cost patterns article's cosineSimilarity, over the same Float32Arrays. */
function cosineSimilarity(a, b) {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb))
}

function bruteForce(vectors, q) {
  let best = -1
  let bestSim = -Infinity
  for (let i = 0; i < vectors.length; i++) {
    const s = cosineSimilarity(q, vectors[i])
    if (s > bestSim) {
      bestSim = s
      best = i
    }
  }
  return best
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))]
}
const fmt = (x, d = 2) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })

async function run(n, dims) {
  const next = rng(n * 31 + dims)
  const vectors = new Array(n)
  const byText = new Map()
  for (let i = 0; i < n; i++) {
    const v = new Float32Array(dims)
    for (let j = 0; j < dims; j++) v[j] = next()
    vectors[i] = v
    byText.set(`q${i}`, v)
  }
  const embed = (text) => byText.get(text)
  const store = new MemoryStore()
  const opts = { embed, threshold: 0.5, maxEntries: n, ttl: 86_400 }
  const approx = new SemanticCache(store, { ...opts, prefix: 'a:' })
  const exact = new SemanticCache(store, { ...opts, prefix: 'e:', approximateFrom: 10_000_000 })
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await approx.set('m', [{ role: 'user', content: `q${i}` }], i)
  const buildMs = Number(process.hrtime.bigint() - t0) / 1e6
  for (let i = 0; i < n; i++) await exact.set('m', [{ role: 'user', content: `q${i}` }], i)

  const Q = 200
  const questions = []
  for (let i = 0; i < Q; i++) {
    const base = vectors[(i * 7919) % n]
    const noise = 0.1 + (i % 5) * 0.05
    const q = base.map((b) => b + noise * next())
    byText.set(`ask${i}`, q)
    questions.push([{ role: 'user', content: `ask${i}` }])
  }
  const time = async (cache) => {
    const ms = []
    const answers = []
    for (const m of questions) {
      const t = process.hrtime.bigint()
      const r = await cache.get('m', m)
      ms.push(Number(process.hrtime.bigint() - t) / 1e6)
      answers.push(r.hit ? r.response : -1)
    }
    return { ms, answers }
  }
  await time(approx) // warm up
  const a = await time(approx)
  const e = await time(exact)
  let same = 0
  for (let i = 0; i < Q; i++) if (a.answers[i] === e.answers[i]) same++
  // JavaScript brute force: fewer questions at the large sizes (it is slow).
  const jq = Math.max(5, Math.min(Q, Math.floor(2e8 / (n * dims))))
  const js = []
  let jsAgree = 0
  for (let i = 0; i < jq; i++) {
    const q = byText.get(`ask${i}`)
    const t = process.hrtime.bigint()
    const best = bruteForce(vectors, q)
    js.push(Number(process.hrtime.bigint() - t) / 1e6)
    if (best === e.answers[i]) jsAgree++
  }
  await approx.clear()
  await exact.clear()
  return {
    n,
    dims,
    buildMs,
    approx: { p50: pct(a.ms, 50), p99: pct(a.ms, 99) },
    exact: { p50: pct(e.ms, 50), p99: pct(e.ms, 99) },
    js: { p50: pct(js, 50), p99: pct(js, 99), asked: jq, agree: jsAgree / jq },
    recall: same / Q,
  }
}

async function semanticBench() {
  const sizes = process.env.SEMANTIC_BENCH_SIZES
    ? process.env.SEMANTIC_BENCH_SIZES.split(',').map(Number)
    : process.env.BENCH_QUICK === '1'
      ? [1000, 10_000]
      : [1000, 10_000, 100_000]
  console.log('8. Semantic cache lookup (SemanticCache.get on MemoryStore; random vectors, questions near a stored one)')
  console.log('   entries × dims     tollgate p50 / p99       exact scan p50       JS brute force p50     recall   vs JS   set/entry')
  for (const dims of [384, 1536]) {
    for (const n of sizes) {
      const r = await run(n, dims)
      console.log(
        `   ${`${n.toLocaleString('en-US')} × ${dims}`.padEnd(16)} ${fmt(r.approx.p50, 3).padStart(8)} / ${fmt(r.approx.p99, 3).padStart(7)} ms ${fmt(r.exact.p50, 3).padStart(10)} ms ${fmt(r.js.p50, 3).padStart(14)} ms    ${fmt(r.recall, 3).padStart(6)} ${fmt(r.js.p50 / r.approx.p50, 0).padStart(6)}×   ${fmt((r.buildMs * 1000) / n, 1).padStart(6)} µs`,
      )
    }
  }
  console.log('   target: p50 ≤ 2 ms at 100,000 × 1536 with recall ≥ 0.99 (tollgate p50 includes the exact-request check and the napi call)')
  console.log('')
}

module.exports = { semanticBench }

if (require.main === module) {
  semanticBench().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
