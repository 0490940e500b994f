'use strict'
// Part of `npm run bench`: what a Redis outage costs each caller, and what the blocked-key cache
// saves. Starts its own redis-server (it pauses it with SIGSTOP).
//
// 5. Outage: Redis paused; 2,000 awaited consumes per policy. tollgate pays one timeout per
//    `storeRetryMs` and answers the other calls at once (from the policy); rate-limiter-flexible
//    over ioredis (commandTimeout = tollgate's) waits out the timeout on every call, and with no
//    commandTimeout does not settle until Redis comes back.
//    5b. One request = RateLimiter.consume → TokenBudget.reserve → ResponseCache.get on one
//    store, Redis paused for 5 s: what the requests waited in all (one timeout per outage: the
//    store's health state is shared by its classes), and how long after SIGCONT the first
//    request is answered by Redis again (a PING probe every storeRetryMs finds it).
//    5c. Redis killed, 1,000 records answered by the policy, restarted on its port (empty):
//    flush() at once (it probes the store itself), when the store is seen up, the next call.
// 6. Blocked-key cache: Redis commands per refused call on an exhausted key.

const Redis = require('ioredis')
const { RateLimiterRedis } = require('rate-limiter-flexible')
const { RateLimiter, RedisStore, ResponseCache, TokenBudget } = require('../lib/index.js')
const { startRedis } = require('./redis-server.js')

const QUICK = process.env.BENCH_QUICK === '1'
const fmt = (x, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })


const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]

/** Latencies (ms) of `n` awaited calls; a call that does not settle in `capMs` counts as capMs. */
async function latencies(fn, n, capMs) {
  const out = []
  let unsettled = 0
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint()
    const settled = await Promise.race([fn().then(() => true, () => true), new Promise((r) => setTimeout(() => r(false), capMs))])
    if (!settled) unsettled++
    out.push(Number(process.hrtime.bigint() - t0) / 1e6)
    if (!settled) break
  }
  return { out, unsettled }
}

async function outageBench() {
  const server = await startRedis({ own: true })
  const N = QUICK ? 500 : 2_000
  try {
    console.log(`5. Redis paused (SIGSTOP): ${fmt(N)} awaited consumes, default timeouts (connect 500 ms, command 1 s)`)
    console.log('                                                 p50          p99          max   store errors')
    for (const onStoreError of ['fail-closed', 'fail-open', 'local']) {
      const store = new RedisStore(server.url)
      const rl = new RateLimiter(store, { maxRequests: 1_000_000, prefix: `outage:${onStoreError}:`, onStoreError })
      await rl.consume('warm')
      server.pause()
      const { out } = await latencies(() => rl.consume('k'), N, 5_000)
      server.resume()
      const errors = Object.values(rl.stats().errors).reduce((a, b) => a + b, 0)
      console.log(`   tollgate '${onStoreError}'`.padEnd(44) + `${fmt(pct(out, 0.5), 3).padStart(12)} ms ${fmt(pct(out, 0.99), 3).padStart(9)} ms ${fmt(Math.max(...out), 0).padStart(9)} ms ${String(errors).padStart(8)}`)
      await store.close()
      await new Promise((r) => setTimeout(r, 200))
    }
    for (const [label, commandTimeout] of [['commandTimeout 1 s', 1000], ['no commandTimeout', undefined]]) {
      const client = new Redis(server.url, { commandTimeout, maxRetriesPerRequest: 1, enableOfflineQueue: true })
      const rlf = new RateLimiterRedis({ storeClient: client, points: 1_000_000, duration: 60, keyPrefix: `outage:rlf:${label}` })
      await rlf.consume('warm')
      server.pause()
      // 20 calls are enough to see the shape: each one waits for its own timeout.
      const { out, unsettled } = await latencies(() => rlf.consume('k'), 20, 3_000)
      server.resume()
      const line = unsettled
        ? `did not settle within 3 s (ioredis waits for Redis to come back)`
        : `${fmt(pct(out, 0.5), 3).padStart(12)} ms ${fmt(pct(out, 0.99), 3).padStart(9)} ms ${fmt(Math.max(...out), 0).padStart(9)} ms`
      console.log(`   rate-limiter-flexible, ${label}`.padEnd(44) + (unsettled ? ' ' : '') + line)
      client.disconnect()
      await new Promise((r) => setTimeout(r, 200))
    }
    console.log('')

    // ---- 6. blocked-key cache ----------------------------------------------------------------
    const admin = new Redis(server.url)
    const commands = async (fn, n) => {
      await admin.config('RESETSTAT')
      for (let i = 0; i < n; i++) await fn()
      const info = await admin.info('commandstats')
      // Script calls sent by the client (commands run inside a script are counted apart).
      let total = 0
      for (const m of info.matchAll(/^cmdstat_(evalsha|eval|evalsha_ro|eval_ro):calls=(\d+)/gm)) total += Number(m[2])
      return total / n
    }
    const M = QUICK ? 200 : 1_000
    const store = new RedisStore(server.url)
    const cached = new RateLimiter(store, { maxRequests: 10, prefix: 'blocked:on:' })
    const uncached = new RateLimiter(store, { maxRequests: 10, prefix: 'blocked:off:', blockedKeyCache: false })
    const client = new Redis(server.url)
    const rlf = new RateLimiterRedis({ storeClient: client, points: 10, duration: 60, keyPrefix: 'blocked:rlf' })
    for (let i = 0; i < 11; i++) {
      await cached.consume('k')
      await uncached.consume('k')
      await rlf.consume('k').catch(() => {})
    }
    console.log(`6. Blocked-key cache: Redis script calls per refused consume on an exhausted key (${fmt(M)} calls)`)
    console.log(`   tollgate (blocked-key cache, default)      ${fmt(await commands(() => cached.consume('k'), M), 3)}`)
    console.log(`   tollgate, blockedKeyCache: false           ${fmt(await commands(() => uncached.consume('k'), M), 3)}`)
    console.log(`   rate-limiter-flexible RateLimiterRedis     ${fmt(await commands(() => rlf.consume('k').catch(() => {}), M), 3)}`)
    console.log('')
    await store.close()
    client.disconnect()
    admin.disconnect()
  } finally {
    server.stop()
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** 5b and 5c: a request through three classes during a hang, and the first call after a restart. */
async function requestBench() {
  const PAUSE_MS = QUICK ? 2_000 : 5_000
  console.log(`5b. Redis paused ${fmt(PAUSE_MS / 1000)} s; each request = consume → reserve → cache.get on one store (default timeouts, storeRetryMs 3 s)`)
  console.log('                      requests   waited in all   slowest   timeouts paid   Redis answers again after SIGCONT')
  for (const onStoreError of ['fail-closed', 'fail-open', 'local']) {
    const server = await startRedis({ own: true })
    const store = new RedisStore(server.url, { onStoreError })
    const rl = new RateLimiter(store, { maxRequests: 1_000_000, prefix: 'req:rl:' })
    const tb = new TokenBudget(store, { maxTokens: 1e12, prefix: 'req:tb:' })
    const cache = new ResponseCache(store, { prefix: 'req:c:' })
    const settle = (p) => p.then((r) => r, (e) => e)
    const request = async () => {
      const t0 = performance.now()
      const out = [await settle(rl.consume('u')), await settle(tb.reserve('u', 10)), await settle(cache.get('m', [1]))]
      return { out, ms: performance.now() - t0 }
    }
    await request()
    server.pause()
    const t0 = performance.now()
    let n = 0
    let waited = 0
    let slowest = 0
    while (performance.now() - t0 < PAUSE_MS) {
      const r = await request()
      n++
      waited += r.ms
      slowest = Math.max(slowest, r.ms)
      await sleep(1) // a request a millisecond, not a busy loop
    }
    const timeouts = [rl, tb, cache].reduce((a, c) => a + (c.stats().errors.ERR_TOLLGATE_STORE_TIMEOUT || 0), 0)
    server.resume()
    const resumed = performance.now()
    let back
    for (;;) {
      const r = await request()
      if (!(r.out[0] instanceof Error) && r.out[0].fallback === undefined) {
        back = performance.now() - resumed
        break
      }
      await sleep(5)
    }
    console.log(
      `   '${onStoreError}'`.padEnd(22) +
        `${fmt(n).padStart(8)} ${fmt(waited, 0).padStart(12)} ms ${fmt(slowest, 0).padStart(6)} ms ${String(timeouts).padStart(12)}     ${fmt(back, 0)} ms`,
    )
    await store.close()
    server.stop()
  }
  console.log('')
  console.log('5c. Redis killed, 1,000 records answered by the policy, restarted on its port (empty)')
  for (const onStoreError of ['fail-closed', 'fail-open', 'local']) {
    let server = await startRedis({ own: true })
    const store = new RedisStore(server.url, { onStoreError })
    const tb = new TokenBudget(store, { maxTokens: 1e12, prefix: 'restart:' })
    await tb.record('u', 1)
    server.stop()
    await server.exited
    let answered = 0
    for (let i = 0; i < 1_000; i++) await tb.record('u', 1).then((r) => r.fallback && answered++, () => {})
    server = await startRedis({ own: true, port: server.port })
    const t1 = performance.now()
    const flushed = await tb.flush()
    const flushMs = performance.now() - t1
    while (store.health().status !== 'up') await sleep(5)
    const upMs = performance.now() - t1
    const t2 = performance.now()
    const first = await tb.record('u', 1).then((r) => (r.fallback ? `answered by '${r.fallback}'` : 'answered by Redis'), (e) => e.code)
    const firstMs = performance.now() - t2
    const admin = new Redis(server.url)
    const inRedis = Number((await admin.hget('restart:u', 'u')) || 0)
    admin.disconnect()
    console.log(
      `   '${onStoreError}'`.padEnd(18) +
        `flush() at once: ${flushed} in ${fmt(flushMs, 0)} ms (${fmt(answered)} queued); store up after ${fmt(upMs, 0)} ms; next call ${first} in ${fmt(firstMs, 1)} ms; Redis holds ${fmt(inRedis)}`,
    )
    await store.close()
    server.stop()
  }
  console.log('')
}

module.exports = { outageBench, requestBench }

if (require.main === module) {
  ;(process.argv[2] === 'requests' ? requestBench() : outageBench().then(requestBench)).catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
