'use strict'
// npm run bench -- leased: leased limits (docs/leases.md) against plain Redis and MemoryStore.
//
// 1. Decisions per second across 4 processes, each one caller awaiting `consume` on one shared
//    limit (far from full, so every decision is admitted): plain Redis (a round trip each,
//    batched only within a process's turn), leased Redis, and a MemoryStore per process (no
//    sharing: the in-process ceiling). With Redis round trips per 1,000 decisions.
// 2. The same 4 processes under saturation (the limit is a tenth of the demand): admitted per
//    window against the limit, and round trips per 1,000 decisions.
// 3. The guard: the same 4 processes, one caller each awaiting `acquire` + `settle` on a guard
//    with a request and a token limit on one shared scope (far from full): plain Redis (a round
//    trip to acquire, one to settle), leased (guard-wide `lease: true`: both limits leased, no
//    round trip while the leases have room) and a MemoryStore per process.
// 4. Unused capacity: the units sitting in live leases, not used yet, sampled every 20 ms in
//    each of the 4 processes during (1), as a share of the limit's rate over a lease time; and
//    how fast an idle process gives its lease back (time from its last decision until Redis no
//    longer counts the unused part).

const { execFile } = require('node:child_process')
const path = require('node:path')
const { promisify } = require('node:util')
const Redis = require('ioredis')
const { Guard, MemoryStore, RateLimiter, RedisStore } = require('../lib/index.js')
const { startRedis } = require('./redis-server.js')

const run = promisify(execFile)
const QUICK = process.env.BENCH_QUICK === '1'
const PROCESSES = 4
const fmt = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })

/** In a child: one caller awaiting `consume` for `ms`; prints decisions, admitted, round trips. */
async function worker(mode, url, prefix, max, windowMs, ms) {
  const store = mode === 'memory' ? new MemoryStore() : new RedisStore(url)
  const saturated = mode === 'saturated'
  if (saturated) mode = 'leased'
  const rl = new RateLimiter(store, { maxRequests: max, windowSeconds: windowMs / 1000, prefix, ...(mode === 'leased' ? { lease: true } : {}) })
  const times = []
  // Warm up (scripts loaded, first lease taken), then start together on the wall clock.
  for (let i = 0; i < 200; i++) await rl.consume(saturated ? 'warm' : 'shared')
  const start = Math.ceil(Date.now() / 100) * 100 + 200
  while (Date.now() < start) await new Promise((r) => setTimeout(r, 1))
  const before = rl.stats()
  let decisions = 0
  let admitted = 0
  let idle = 0
  let samples = 0
  let next = Date.now() + 20
  const end = start + ms
  for (;;) {
    for (let i = 0; i < 256; i++) {
      if ((await rl.consume('shared')).allowed) {
        admitted++
        if (saturated) times.push(Date.now())
      }
    }
    decisions += 256
    const now = Date.now()
    if (now >= end) break
    if (mode === 'leased' && now >= next) {
      const l = rl.stats().lease
      idle += l.units - l.used
      samples++
      next += 20
    }
  }
  const seconds = (Date.now() - start) / 1000
  const calls = rl.stats().redisCalls - before.redisCalls
  await rl.close()
  if (mode !== 'memory') await store.close()
  process.stdout.write(JSON.stringify({ decisions, admitted, seconds, calls, idle: samples ? idle / samples : 0, times, start }))
}

/** In a child: one caller awaiting a guard's `acquire` + `settle` for `ms` (mode guard-<plain|leased|memory>). */
async function guardWorker(mode, url, prefix, max, windowMs, ms) {
  const store = mode === 'guard-memory' ? new MemoryStore() : new RedisStore(url)
  const limits = [
    { id: 'rpw', scope: 'shared', requests: max, per: windowMs },
    { id: 'tpw', scope: 'shared', tokens: max * 100, per: windowMs },
  ]
  const guard = new Guard({ store, prefix, limits, ...(mode === 'guard-leased' ? { lease: true } : {}) })
  const request = { model: 'gpt-4o-mini', tokens: 50, maxTokens: 30 }
  const usage = { inputTokens: 50, outputTokens: 20 }
  for (let i = 0; i < 200; i++) await (await guard.acquire({}, request)).settle(usage)
  const start = Math.ceil(Date.now() / 100) * 100 + 200
  while (Date.now() < start) await new Promise((r) => setTimeout(r, 1))
  const before = guard.stats()
  let decisions = 0
  let admitted = 0
  const end = start + ms
  for (;;) {
    for (let i = 0; i < 64; i++) {
      const d = await guard.acquire({}, request)
      if (d.ok) {
        admitted++
        await d.settle(usage)
      }
    }
    decisions += 64
    if (Date.now() >= end) break
  }
  const seconds = (Date.now() - start) / 1000
  const calls = guard.stats().redisCalls - before.redisCalls
  await guard.close()
  if (mode !== 'guard-memory') await store.close()
  process.stdout.write(JSON.stringify({ decisions, admitted, seconds, calls, idle: 0, times: [], start }))
}

async function processes(mode, url, max, windowMs, ms) {
  const prefix = `bench:leased:${mode}:${Date.now()}:`
  const outs = await Promise.all(
    Array.from({ length: PROCESSES }, async () => {
      const { stdout } = await run(process.execPath, [__filename, '--worker', mode, url, prefix, String(max), String(windowMs), String(ms)], { timeout: 60_000 })
      return JSON.parse(stdout)
    }),
  )
  const sum = (k) => outs.reduce((n, o) => n + o[k], 0)
  const seconds = Math.max(...outs.map((o) => o.seconds))
  return { rate: sum('decisions') / seconds, admitted: sum('admitted'), decisions: sum('decisions'), seconds, calls: sum('calls'), idle: sum('idle'), times: outs.flatMap((o) => o.times).sort((a, b) => a - b), start: Math.min(...outs.map((o) => o.start)) }
}

/** Time (ms) from an idle process's last decision until Redis counts only what it used. */
async function giveBack(url) {
  const admin = new Redis(url)
  const store = new RedisStore(url)
  const prefix = `bench:leased:idle:${Date.now()}:`
  const max = 6000
  const rl = new RateLimiter(store, { maxRequests: max, windowSeconds: 60, prefix, lease: true })
  const times = []
  for (let i = 0; i < (QUICK ? 3 : 10); i++) {
    const id = `k${i}`
    await rl.consume(id)
    const t0 = process.hrtime.bigint()
    const held = rl.stats().lease.units
    for (;;) {
      const fields = await admin.hkeys(`${prefix}${id}`)
      if (!fields.some((f) => f.startsWith('g:'))) break
      await new Promise((r) => setTimeout(r, 1))
    }
    times.push([Number(process.hrtime.bigint() - t0) / 1e6, held])
  }
  await rl.close()
  await store.close()
  admin.disconnect()
  return { ms: times.map((t) => t[0]).sort((a, b) => a - b)[Math.floor(times.length / 2)], held: times[0][1], settings: rl.lease }
}

async function leasedBench() {
  const redis = await startRedis()
  try {
    const ms = QUICK ? 500 : 2000
    console.log(`\nLeased limits: ${PROCESSES} processes, one caller each awaiting consume() on one limit, ${ms} ms per run`)
    // Far from full: a limit no run reaches (10M per second; the lease time is then 0.1 s).
    const wide = [10_000_000, 1000]
    const plain = await processes('plain', redis.url, ...wide, ms)
    const leased = await processes('leased', redis.url, ...wide, ms)
    const memory = await processes('memory', redis.url, ...wide, ms)
    const perK = (r) => (1000 * r.calls) / r.decisions
    console.log('                      decisions/s   round trips per 1,000 decisions')
    console.log(`   plain Redis     ${fmt(plain.rate).padStart(14)}   ${fmt(perK(plain), 1).padStart(8)}`)
    console.log(`   leased Redis    ${fmt(leased.rate).padStart(14)}   ${fmt(perK(leased), 3).padStart(8)}`)
    console.log(`   MemoryStore     ${fmt(memory.rate).padStart(14)}          -   (one per process, not shared)`)
    console.log(`   leased is ${fmt(leased.rate / plain.rate, 1)}× plain (target ≥ 20×) and ${fmt(leased.rate / memory.rate, 2)}× MemoryStore (target ≥ 0.5×)`)
    // Unused: what sat in the 4 processes' leases, not used yet, on average.
    const perMs = leased.rate / 1000
    console.log(
      `   unused capacity in live leases: ${fmt(leased.idle)} requests on average across the ${PROCESSES} processes = ${fmt((100 * leased.idle) / wide[0], 2)} % of the limit, ${fmt(leased.idle / perMs, 0)} ms of their demand`,
    )

    // The guard: acquire + settle over a request and a token limit.
    const gPlain = await processes('guard-plain', redis.url, ...wide, ms)
    const gLeased = await processes('guard-leased', redis.url, ...wide, ms)
    const gMemory = await processes('guard-memory', redis.url, ...wide, ms)
    const guardRow = (name, r, note = '') => {
      // Round trips: the plain guard's acquires and settles (two per decision); leases' asks.
      console.log(`   ${name.padEnd(16)}${fmt(r.rate).padStart(14)}   ${r === gMemory ? '       -' : fmt(perK(r), 3).padStart(8)}${note}`)
    }
    console.log('   Guard (acquire + settle, a request and a token limit)')
    guardRow('plain Redis', gPlain)
    guardRow('leased Redis', gLeased)
    guardRow('MemoryStore', gMemory, '   (one per process, not shared)')
    console.log(`   leased guard is ${fmt(gLeased.rate / gPlain.rate, 1)}× plain and ${fmt(gLeased.rate / gMemory.rate, 2)}× MemoryStore`)

    // Saturation: a limit of a twentieth of what plain Redis admits, over 1 s windows, the run
    // three windows long: the second and third windows (after the first burst) are counted.
    const tight = [Math.max(100, Math.round(plain.rate / 20)), 1000]
    const sat = await processes('saturated', redis.url, ...tight, Math.max(ms, 3200))
    const from = sat.times[0] + tight[1]
    const steady = sat.times.filter((t) => t >= from && t < from + 2 * tight[1]).length
    let busiest = 0
    for (let lo = 0, hi = 0; hi < sat.times.length; hi++) {
      while (sat.times[hi] - sat.times[lo] >= tight[1]) lo++
      busiest = Math.max(busiest, hi - lo + 1)
    }
    console.log(
      `   saturated (limit ${fmt(tight[0])} per second, demand ~${fmt(leased.rate / tight[0], 0)}×): ${fmt((100 * steady) / (2 * tight[0]), 1)} % of the limit admitted over two whole windows, busiest window ${fmt(busiest)} (≤ ${fmt(tight[0])}), ${fmt(perK(sat), 3)} round trips per 1,000 decisions`,
    )

    const idle = await giveBack(redis.url)
    console.log(
      `   an idle process gives back its lease (${fmt(idle.held)} requests, lease ${idle.settings.seconds} s, idle after ${idle.settings.idleSeconds} s) ${fmt(idle.ms, 1)} ms after its last decision (median)`,
    )
    console.log('')
  } finally {
    await redis.stop()
  }
}

if (process.argv[2] === '--worker') {
  const [mode, url, prefix, max, windowMs, ms] = process.argv.slice(3)
  ;(mode.startsWith('guard-') ? guardWorker : worker)(mode, url, prefix, Number(max), Number(windowMs), Number(ms)).catch((e) => {
    console.error(e)
    process.exit(1)
  })
}

module.exports = { leasedBench }
