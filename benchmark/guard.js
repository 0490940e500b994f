'use strict'
// The guard (`npm run bench -- guard`): one LLM call guarded by five limits — user RPM, user
// tokens per day, org dollars per month, provider TPM, model concurrency — as one acquire +
// settle, beside the same policy hand-built from tollgate's single classes and beside
// rate-limiter-flexible's RateLimiterUnion (requests only), in-process and on Redis.
//
// Per acquire + settle, for each contender: µs in-process (MemoryStore, one caller awaiting
// each call); on Redis µs with one caller, ops/s with 256 callers at once, and the commands
// sent per call, counted by a second connection in MONITOR (not INFO commandstats, which also
// counts what scripts run inside Redis).
//
// Two scaling dimensions, as a grid: distinct users (20 and 20,000, one org per 10 users) and
// the entries in the sliding windows (a clock the bench moves by 60,000 / entries ms a call,
// so the provider's TPM window holds 20 or 20,000 calls once full; each user's RPM window
// holds entries / users of them, at least one). A decision must cost the same at 20 as at
// 20,000. The windows are filled before anything is measured. Each timing is the best of 5
// rounds, the contenders taking turns (the machine may be shared with other work).
//
// The limits are far away: every call is admitted, so each does the full work.
//
// Sizes: BENCH_QUICK=1 for smaller runs; GUARD_BENCH_N=<calls> sets the calls timed per
// measurement (the other sizes follow it), GUARD_BENCH_ROUNDS the rounds (default 5) and
// GUARD_BENCH_USERS / GUARD_BENCH_ENTRIES the grid (comma-separated) — the smoke test runs it
// tiny.

const os = require('node:os')
const Redis = require('ioredis')
const { RateLimiterMemory, RateLimiterRedis, RateLimiterUnion } = require('rate-limiter-flexible')
const { CostTracker, Guard, MemoryStore, Quota, RateLimiter, RedisStore, TokenBudget, costOf } = require('../lib/index.js')
const { startRedis } = require('./redis-server.js')

const QUICK = process.env.BENCH_QUICK === '1'
const list = (s, fallback) => (s ? s.split(',').map(Number) : fallback)
const N = Number(process.env.GUARD_BENCH_N) || (QUICK ? 20_000 : 100_000)
const USERS = list(process.env.GUARD_BENCH_USERS, [20, 20_000])
const ENTRIES = list(process.env.GUARD_BENCH_ENTRIES, [20, 20_000])
/** Calls timed on Redis with one caller; calls per caller with 256 callers; calls watched by MONITOR. */
const RN = Math.max(20, Math.floor(N / 100))
const CALLERS = 256
const PER_CALLER = Math.max(2, Math.floor(N / 10_000))
const WATCHED = Math.min(200, RN)
/** Rounds of each timing, the contenders taking turns. */
const ROUNDS = Number(process.env.GUARD_BENCH_ROUNDS) || 5

const MODEL = 'gpt-4o-mini'
const REQUEST = { model: MODEL, tokens: 500, maxTokens: 200 }
const USAGE = { inputTokens: 400, outputTokens: 150 }
const HOLD_MS = 3_600_000
// Far away: nothing is ever refused.
const MAX = { rpm: 10_000_000, tpd: 1e12, usdMonth: 1_000_000, tpm: 1e12, concurrent: 100_000 }

const fmt = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })

/** The bench's clock, moved by `step` ms before each call (the window fill). */
function stepClock(step) {
  let t = Date.UTC(2026, 5, 1)
  return {
    now: () => t,
    /** `call`, with the clock moved first. */
    ticking: (call) => (ctx) => {
      t += step
      return call(ctx)
    },
  }
}

/** Context of call `i`: its user, the user's org, the provider and model. */
function contexts(users) {
  return Array.from({ length: users }, (_, u) => ({ user: `user-${u}`, org: `org-${Math.floor(u / 10)}`, provider: 'openai', model: MODEL }))
}

// ---- the contenders: each `call(ctx)` is one admitted acquire + settle ------------------------

/** The guard, its five limits decided in one step (one script call on Redis). */
function guardContender(store, prefix) {
  const guard = new Guard({
    store,
    prefix,
    holdTtlMs: HOLD_MS,
    limits: [
      { id: 'user-rpm', scope: (c) => c.user, requests: MAX.rpm, per: '1m' },
      { id: 'user-tpd', scope: (c) => c.user, tokens: MAX.tpd, per: 'day' },
      { id: 'org-usd', scope: (c) => c.org, usd: MAX.usdMonth, per: 'month' },
      { id: 'provider-tpm', scope: (c) => c.provider, tokens: MAX.tpm, per: '1m' },
      { id: 'model-conc', scope: (c) => c.model, concurrent: MAX.concurrent },
    ],
  })
  return async (ctx) => {
    const d = await guard.acquire(ctx, REQUEST)
    if (!d.ok) throw new Error(`guard refused by ${d.limit}`)
    await d.settle(USAGE)
  }
}

/**
 * The same policy from tollgate's single classes, as close as they allow:
 * - user RPM: RateLimiter (a sliding window, `consume`);
 * - user tokens per day: TokenBudget reserve → settle (its day starts at the bucket's first
 *   write, not at UTC midnight);
 * - org dollars per month: a CostTracker per org (a tracker is one ledger; its prefix is the
 *   org) with a monthly budget, reserve → settle;
 * - provider TPM: Quota with the provider as its one key (a sliding TPM window, huge RPM and
 *   RPD as a sliding window, bufferMs 0), reserve → commit;
 * - model concurrency: a TokenBudget of `concurrent` tokens where each call reserves 1 and
 *   releases it at the end (a hold is a slot in flight; an unsettled one expires).
 * The four refundable reservations go out at once; the rate limit (which cannot give a request
 * back) is consumed only once they all passed, and a refusal releases what was held — the
 * fastest order that still charges nothing on refusal, where a user would more likely await
 * the five in turn. The settles go out at once. 5 + 4 calls to the store.
 */
function handBuiltContender(store, prefix, ctxs, clock) {
  const rpm = new RateLimiter(store, { maxRequests: MAX.rpm, windowSeconds: 60, prefix: `${prefix}rpm:` })
  const tpd = new TokenBudget(store, { maxTokens: MAX.tpd, periodSeconds: 86_400, holdTtlSeconds: HOLD_MS / 1000, prefix: `${prefix}tpd:` })
  const orgs = new Map()
  for (const c of ctxs) {
    if (!orgs.has(c.org)) {
      orgs.set(c.org, new CostTracker(store, { dailyBudget: null, monthlyBudget: MAX.usdMonth, holdTtlSeconds: HOLD_MS / 1000, prefix: `${prefix}usd:${c.org}:`, now: clock.now, onAlert: () => {} }))
    }
  }
  const tpm = new Quota(store, { bufferMs: 0, rpmWindow: true, holdTtlMs: HOLD_MS, prefix: `${prefix}tpm:`, now: clock.now })
  const providerKey = [{ id: 'openai', rpm: 1e9, tpm: MAX.tpm, rpd: 1e15 }]
  const conc = new TokenBudget(store, { maxTokens: MAX.concurrent, periodSeconds: 86_400, holdTtlSeconds: HOLD_MS / 1000, prefix: `${prefix}conc:` })
  return async (ctx) => {
    const tokens = REQUEST.tokens + REQUEST.maxTokens
    const usd = orgs.get(ctx.org)
    const [a, b, q, c] = await Promise.all([
      tpd.reserve(ctx.user, tokens),
      usd.reserve(costOf({ inputTokens: REQUEST.tokens, outputTokens: REQUEST.maxTokens }, MODEL), { model: MODEL }),
      tpm.reserve(ctx.provider, providerKey, tokens),
      conc.reserve(ctx.model, 1),
    ])
    const giveBack = () =>
      Promise.all([a.hold && tpd.release(a.hold), b.hold && usd.release(b.hold), q.ok && tpm.rollback(q.hold), c.hold && conc.release(c.hold)])
    if (!a.hold || !b.hold || !q.ok || !c.hold) {
      await giveBack()
      throw new Error(`hand-built composition refused: ${JSON.stringify([a.allowed, b.allowed, q.ok && q.reason, q.reason, q.waitMs, c.allowed])}`)
    }
    if (!(await rpm.consume(ctx.user)).allowed) {
      await giveBack()
      throw new Error('hand-built composition refused by the RPM limit')
    }
    // ... the LLM call ...
    await Promise.all([tpd.settle(a.hold, USAGE), usd.settle(b.hold, USAGE), tpm.commit(q.hold, USAGE), conc.release(c.hold)])
  }
}

/**
 * rate-limiter-flexible's RateLimiterUnion: five limiters consumed in parallel, requests only
 * (no tokens, dollars or concurrency, nothing to settle), and every limiter keyed by the one key
 * the union is given (the user): it cannot put the org, provider and model limits on their own
 * scopes, and cannot take back what the others consumed when one refuses.
 */
function unionContender(make, prefix) {
  const day = 86_400
  const union = new RateLimiterUnion(
    make({ keyPrefix: `${prefix}rpm`, points: MAX.rpm, duration: 60 }),
    make({ keyPrefix: `${prefix}rpd`, points: MAX.rpm, duration: day }),
    // 24 days: a month overflows RateLimiterMemory's expiry timer (setTimeout's 2^31 ms).
    make({ keyPrefix: `${prefix}org`, points: MAX.rpm, duration: 24 * day }),
    make({ keyPrefix: `${prefix}prov`, points: MAX.rpm, duration: 60 }),
    make({ keyPrefix: `${prefix}model`, points: MAX.rpm, duration: 60 }),
  )
  return (ctx) => union.consume(ctx.user)
}

// ---- measuring ---------------------------------------------------------------------------------

/** µs per call over `n` calls, one caller awaiting each. */
async function perCall(call, ctxs, n) {
  const t0 = process.hrtime.bigint()
  for (let k = 0; k < n; k++) await call(ctxs[k % ctxs.length])
  return Number(process.hrtime.bigint() - t0) / n / 1000
}

/** ops/s with `callers` loops at once, `per` calls each. */
async function throughput(call, ctxs, callers, per) {
  let i = 0
  const loop = async () => {
    for (let k = 0; k < per; k++) await call(ctxs[i++ % ctxs.length])
  }
  const t0 = process.hrtime.bigint()
  await Promise.all(Array.from({ length: callers }, loop))
  return (callers * per) / (Number(process.hrtime.bigint() - t0) / 1e9)
}

/**
 * `measure(call)` of every contender, in turns (guard, hand-built, union, guard, …) so that a
 * change of the machine's load falls on all of them; the best of `rounds` each (`best` picks
 * it: on a shared machine the least disturbed round is the closest to the call's own cost).
 */
async function inTurns(calls, measure, rounds, best) {
  const out = {}
  for (let r = 0; r < rounds; r++) {
    for (const [name, call] of Object.entries(calls)) {
      const x = await measure(call)
      out[name] = r === 0 ? x : best(out[name], x)
    }
  }
  return out
}

/** Fills the windows: `n` calls, 256 at once. */
async function fill(call, ctxs, n) {
  let i = 0
  const loop = async () => {
    while (i < n) await call(ctxs[i++ % ctxs.length])
  }
  await Promise.all(Array.from({ length: CALLERS }, loop))
}

/**
 * Commands sent per call, by name, seen by a connection in MONITOR while `work` makes `n`
 * calls. The admin connection's own commands and those scripts run inside Redis are left out;
 * a MULTI … EXEC block counts as one round trip.
 */
async function commandsPerCall(url, admin, work, n) {
  // monitor() opens a connection of its own in MONITOR mode.
  const client = new Redis(url)
  const monitor = await client.monitor()
  client.disconnect()
  const adminPort = String(admin.stream.localPort)
  const marker = `guard-bench-end-${process.pid}-${Date.now()}`
  const counts = {}
  let trips = 0
  const inMulti = new Set()
  let stopped = false
  let done
  const seenMarker = new Promise((resolve) => (done = resolve))
  monitor.on('monitor', (_time, args, source) => {
    // Commands a script runs inside Redis show as from 'lua': not sent by a client.
    if (stopped || !source.includes(':')) return
    const port = source.slice(source.lastIndexOf(':') + 1)
    if (port === adminPort) {
      if (args[0].toLowerCase() === 'echo' && args[1] === marker) {
        stopped = true
        done()
      }
      return
    }
    const name = args[0].toLowerCase()
    counts[name] = (counts[name] ?? 0) + 1
    if (name === 'multi') inMulti.add(source)
    else if (name === 'exec' || name === 'discard') inMulti.delete(source)
    if (!inMulti.has(source) || name === 'multi') trips++
  })
  // MONITOR starts listening once its reply came back; a round trip of admin's makes sure.
  await admin.ping()
  await work()
  await admin.echo(marker)
  await seenMarker
  monitor.disconnect()
  for (const k of Object.keys(counts)) counts[k] /= n
  return { trips: trips / n, counts }
}

/**
 * Redis's own µs per call over `n` calls (INFO commandstats), summed over the commands clients
 * send (`sent`, as MONITOR saw them): a script's time includes the commands it runs.
 */
async function serverUsPerCall(admin, work, n, sent) {
  await admin.config('RESETSTAT')
  await work()
  const info = await admin.info('commandstats')
  let usec = 0
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+)/gm)) if (sent.includes(m[1])) usec += Number(m[2])
  return usec / n
}

const describeCommands = (c) =>
  Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${fmt(v, 2)} ${k.toUpperCase()}`)
    .join(' + ')

// ---- the run -----------------------------------------------------------------------------------

async function guardBench() {
  console.log(`11. Guard, 5 limits per call — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0].model}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  console.log('user RPM, user tokens/day, org USD/month, provider TPM, model concurrency; acquire (500 tokens + maxTokens 200) + settle (400 + 150)')
  console.log('hand-built: RateLimiter + TokenBudget + CostTracker per org + Quota (provider as its key) + TokenBudget of slots (concurrency)')
  console.log('RateLimiterUnion: 5 rate-limiter-flexible limiters consumed in parallel, requests only, all keyed by the user, nothing to settle')
  console.log('')
  const grid = []
  for (const users of USERS) for (const entries of ENTRIES) grid.push({ users, entries, ctxs: contexts(users), step: 60_000 / entries })

  // ---- in-process --------------------------------------------------------------------------
  // Each contender has a clock and a store of its own: its windows hold its own calls only.
  const mem = {}
  for (const g of grid) {
    const calls = {}
    const made = {
      guard: (store) => guardContender(store, 'g:'),
      hand: (store, clock) => handBuiltContender(store, 'h:', g.ctxs, clock),
      union: () => unionContender((o) => new RateLimiterMemory(o), 'u'),
    }
    for (const [name, make] of Object.entries(made)) {
      const clock = stepClock(g.step)
      calls[name] = clock.ticking(make(new MemoryStore({ now: clock.now }), clock))
      await fill(calls[name], g.ctxs, Math.max(g.entries, g.users) + 2_000) // fill + warm up
    }
    mem[key(g)] = await inTurns(calls, (call) => perCall(call, g.ctxs, N), ROUNDS, Math.min)
  }

  // ---- Redis -------------------------------------------------------------------------------
  const server = await startRedis()
  const red = {}
  try {
    const admin = new Redis(server.url)
    const ioredis = new Redis(server.url)
    if (process.env.REDIS_URL) console.log(`(REDIS_URL ${server.url}: MONITOR counts every other client of that server too)`)
    const base = `bench:guard:${Date.now()}:`
    let run = 0
    for (const g of grid) {
      const p = `${base}${run++}:`
      const stores = []
      const calls = {}
      const made = {
        guard: (store) => guardContender(store, `${p}g:`),
        hand: (store, clock) => handBuiltContender(store, `${p}h:`, g.ctxs, clock),
        union: () => unionContender((o) => new RateLimiterRedis({ storeClient: ioredis, ...o }), `${p}u`),
      }
      for (const [name, make] of Object.entries(made)) {
        const clock = stepClock(g.step)
        const store = new RedisStore({ url: server.url, now: clock.now })
        stores.push(store)
        calls[name] = clock.ticking(make(store, clock))
        await fill(calls[name], g.ctxs, Math.max(g.entries, g.users) + 2 * CALLERS)
      }
      const ops = await inTurns(calls, (call) => throughput(call, g.ctxs, CALLERS, PER_CALLER), ROUNDS, Math.max)
      const us = await inTurns(calls, (call) => perCall(call, g.ctxs, RN), ROUNDS, Math.min)
      const row = {}
      for (const [name, call] of Object.entries(calls)) {
        const cmds = await commandsPerCall(server.url, admin, () => perCall(call, g.ctxs, WATCHED), WATCHED)
        // With 256 callers, calls in one event-loop turn may share a script call.
        const many = () => throughput(call, g.ctxs, CALLERS, PER_CALLER)
        const loaded = await commandsPerCall(server.url, admin, many, CALLERS * PER_CALLER)
        const serverUs = await serverUsPerCall(admin, many, CALLERS * PER_CALLER, Object.keys(loaded.counts))
        row[name] = { us: us[name], ops: ops[name], ...cmds, tripsLoaded: loaded.trips, serverUs }
      }
      red[key(g)] = row
      for (const store of stores) await store.close()
    }
    ioredis.disconnect()
    admin.disconnect()
  } finally {
    await server.stop()
  }

  // ---- report ------------------------------------------------------------------------------
  const NAMES = { guard: 'tollgate Guard, 5 limits', hand: 'hand-built from 5 tollgate classes', union: 'RateLimiterUnion × 5 (requests only)' }
  console.log(`per acquire + settle, best of ${ROUNDS} rounds taken in turns: in-process µs (1 caller, ${fmt(N)} calls); on Redis: µs (1 caller, ${fmt(RN)} calls), ops/s (${CALLERS} callers),`)
  console.log(`round trips per call counted with MONITOR (1 caller: ${WATCHED} calls; ${CALLERS} callers: ${fmt(CALLERS * PER_CALLER)} calls), Redis's own µs per call (INFO commandstats)`)
  console.log(
    `${'users × window entries'.padEnd(24)} ${'contender'.padEnd(38)} ${'in-process'.padStart(12)} ${'Redis'.padStart(12)} ${'256 callers'.padStart(15)} ${'trips/call'.padStart(11)} ${'at 256'.padStart(7)} ${'Redis CPU'.padStart(11)}`,
  )
  for (const g of grid) {
    const k = key(g)
    for (const name of ['guard', 'hand', 'union']) {
      const m = mem[k][name]
      const r = red[k][name]
      console.log(
        `${(name === 'guard' ? `${fmt(g.users)} × ${fmt(g.entries)}` : '').padEnd(24)} ${NAMES[name].padEnd(38)} ${`${fmt(m, 2)} µs`.padStart(12)} ${`${fmt(r.us, 1)} µs`.padStart(12)} ${`${fmt(r.ops)} ops/s`.padStart(15)} ${fmt(r.trips, 2).padStart(11)} ${fmt(r.tripsLoaded, 2).padStart(7)} ${`${fmt(r.serverUs, 1)} µs`.padStart(11)}`,
      )
    }
  }
  console.log('')
  console.log('commands sent per call on Redis (MONITOR):')
  const k0 = key(grid[0])
  for (const name of ['guard', 'hand', 'union']) console.log(`   ${NAMES[name].padEnd(38)} ${describeCommands(red[k0][name].counts)}`)
  console.log('')
  console.log('ratios (guard over hand-built; guard over RateLimiterUnion):')
  for (const g of grid) {
    const k = key(g)
    const m = mem[k]
    const r = red[k]
    console.log(
      `   ${`${fmt(g.users)} × ${fmt(g.entries)}`.padEnd(18)} in-process ${fmt(m.hand / m.guard, 2)}× faster; Redis 1 caller ${fmt(r.hand.us / r.guard.us, 2)}× faster; 256 callers ${fmt(r.guard.ops / r.hand.ops, 2)}× the throughput (target ≥ 3×); round trips ${fmt(r.guard.trips, 2)} vs ${fmt(r.hand.trips, 2)} (target 2)`,
    )
    console.log(
      `   ${''.padEnd(18)} vs RateLimiterUnion: in-process ${fmt(m.union / m.guard, 2)}×, Redis 1 caller ${fmt(r.union.us / r.guard.us, 2)}×, 256 callers ${fmt(r.guard.ops / r.union.ops, 2)}×, round trips ${fmt(r.guard.trips, 2)} vs ${fmt(r.union.trips, 2)}`,
    )
  }
  const scale = (pick) => {
    const first = pick(grid[0])
    const last = pick(grid[grid.length - 1])
    return fmt(last / first, 2)
  }
  const a = grid[0]
  const z = grid[grid.length - 1]
  console.log(
    `   scaling, guard at ${fmt(z.users)} × ${fmt(z.entries)} over ${fmt(a.users)} × ${fmt(a.entries)}: in-process ${scale((g) => mem[key(g)].guard)}×, Redis 1 caller ${scale((g) => red[key(g)].guard.us)}×, 256 callers ${scale((g) => 1 / red[key(g)].guard.ops)}× the time (target ≈ 1×)`,
  )
  const worst = Math.max(...grid.map((g) => mem[key(g)].guard))
  console.log(`   in-process guard: ${fmt(worst, 2)} µs per acquire + settle at worst (target ≤ 5 µs)`)
  console.log('')
}

function key(g) {
  return `${g.users}x${g.entries}`
}

module.exports = { guardBench }
if (require.main === module) {
  guardBench().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
