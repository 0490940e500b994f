'use strict'
// Quota at scale (`npm run bench -- quota`): what one reserve + commit costs as the TPM window
// fills. Two keys at 10,000 RPM and 30M TPM, bufferMs 0, one reserve + commit of 1,000 tokens
// every 3 ms of simulated time (an injected clock), so the window holds 2,000, 10,000 and then
// 20,000 requests. For each fill: µs per pair on MemoryStore and on Redis, Redis's own µs per
// script call (INFO commandstats), round trips per call, the memory one scope holds; then 256
// concurrent callers on Redis at the full window.

const os = require('node:os')
const Redis = require('ioredis')
const { startRedis } = require('./redis-server.js')
const { MemoryStore, Quota, RedisStore } = require('../lib/index.js')

const QUICK = process.env.BENCH_QUICK === '1'
const fmt = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
const STEP_MS = 3
const FILLS = [2_000, 10_000, 20_000]
const KEYS = [
  { id: 'key-a', rpm: 10_000, tpm: 30_000_000, rpd: 1e9 },
  { id: 'key-b', rpm: 10_000, tpm: 30_000_000, rpd: 1e9 },
]


/** A Quota on `store` with a clock the bench moves, and one pair (reserve + commit) a step. */
function scenario(store, prefix) {
  const clock = { now: Date.UTC(2026, 0, 1, 6) }
  const quota = new Quota({ store, prefix, bufferMs: 0, now: () => clock.now })
  const scope = `scale-${Math.random().toString(36).slice(2)}`
  let served = 0
  let refused = 0
  // `strict`: one caller at a time, where every request fits; with many callers the requests
  // reach Redis in another order than their clocks, and a few may meet the RPM spacing.
  const pair = async (strict = true) => {
    clock.now += STEP_MS
    const r = await quota.reserve(scope, KEYS, 1_000)
    if (!r.ok) {
      if (strict) throw new Error(`refused at ${served} requests: ${r.reason} ${r.waitMs}`)
      refused++
      return
    }
    served++
    await quota.commit(r.hold, { tokens: 1_000 })
  }
  return { quota, scope, pair, clock, served: () => served, refused: () => refused }
}

/** µs per pair over `n` pairs. */
async function timed(pair, n) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await pair()
  return Number(process.hrtime.bigint() - t0) / n / 1000
}

async function quotaScaleBench() {
  console.log(`Quota at scale — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0].model}`)
  console.log('two keys (10,000 RPM, 30M TPM each), bufferMs 0, one reserve + commit of 1,000 tokens every 3 ms of simulated time')
  console.log('')
  const server = await startRedis()
  const admin = new Redis(server.url)
  const store = new RedisStore(server.url)
  const N = QUICK ? 200 : 1_000
  try {
    const mem = scenario(new MemoryStore(), undefined)
    const red = scenario(store, 'bench:quota:')
    const rows = []
    for (const fill of FILLS) {
      // Fill both windows to `fill` requests (their last minute), then measure the next pairs.
      while (mem.served() < fill) await mem.pair()
      while (red.served() < fill) await red.pair()
      const memUs = await timed(mem.pair, N * 5)
      await admin.config('RESETSTAT')
      const redUs = await timed(red.pair, N)
      const info = await admin.info('commandstats')
      const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/.exec(info)
      const calls = m ? Number(m[1]) : 0
      const serverUs = m ? Number(m[3]) : NaN
      const inWindow = Math.min(mem.served(), Math.floor(60_000 / STEP_MS))
      rows.push({ fill, inWindow, memUs, redUs, serverUs, tripsPerCall: calls / (2 * N) })
    }
    console.log('requests in the window   MemoryStore µs/pair   RedisStore µs/pair   Redis server µs/call   round trips/call')
    for (const r of rows) {
      console.log(`${fmt(r.fill).padStart(22)}   ${fmt(r.memUs, 2).padStart(19)}   ${fmt(r.redUs, 1).padStart(18)}   ${fmt(r.serverUs, 1).padStart(20)}   ${fmt(r.tripsPerCall, 2).padStart(16)}`)
    }
    const first = rows[0]
    const last = rows[rows.length - 1]
    console.log(`last / first fill: MemoryStore ${fmt(last.memUs / first.memUs, 2)}×, RedisStore ${fmt(last.redUs / first.redUs, 2)}×, Redis server ${fmt(last.serverUs / first.serverUs, 2)}×  (target ≤ 1.5×)`)
    console.log('targets: in-process ≤ 2 µs per pair; Redis ≤ 30 µs of server time per call; 1 round trip per call')

    // Memory one full scope holds: Redis's MEMORY USAGE of its keys; in-process, the growth of
    // the process's RSS for 8 more full scopes.
    let redisBytes = 0
    for (const k of await admin.keys(`bench:quota:*${red.scope}*`)) redisBytes += Number(await admin.memory('USAGE', k, 'SAMPLES', '0'))
    const before = process.memoryUsage().rss
    const extra = []
    for (let s = 0; s < 8; s++) {
      const sc = scenario(new MemoryStore(), undefined)
      extra.push(sc)
      while (sc.served() < 20_000) await sc.pair()
    }
    const memBytes = (process.memoryUsage().rss - before) / extra.length
    console.log(`memory per scope at 20,000 requests in the window: MemoryStore ~${fmt(memBytes / 1e6, 2)} MB (RSS growth), Redis ${fmt(redisBytes / 1e6, 2)} MB (MEMORY USAGE)`)

    // 256 callers at once on the full scope, the clock still moving 3 ms a pair.
    const C = 256
    const per = QUICK ? 4 : 20
    const t0 = process.hrtime.bigint()
    await Promise.all(Array.from({ length: C }, async () => {
      for (let i = 0; i < per; i++) await red.pair(false)
    }))
    const rate = (C * per) / (Number(process.hrtime.bigint() - t0) / 1e9)
    console.log(`RedisStore, 256 callers on the full scope: ${fmt(rate)} decisions/s (reserve + commit when admitted; ${red.refused()} refused by RPM spacing)  (target ≥ 20,000)`)
    console.log('')
  } finally {
    await store.close()
    admin.disconnect()
    await server.stop()
  }
}

module.exports = { quotaScaleBench }
if (require.main === module) {
  quotaScaleBench().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
