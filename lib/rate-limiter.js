'use strict'
// RateLimiter: a true sliding window per id (provider, model, API key, …). The algorithm is
// engine/sliding_window.rs; this file validates, picks the store's path and shapes results.

const native = require('./native')
const { fromNative } = require('./errors')
const { bump, snapshot, flush } = require('./policy')
const { setUp, storePolicy } = require('./setup')
const v = require('./validate')
const { Leases, leaseOptions, inForce } = require('./lease')

const CHECK = 0
const RECORD = 1
const CONSUME = 2

/**
 * Decisions come from Rust packed into one number: `(reset * 2^24 + remaining) * 2 + 1` when
 * allowed, `resetMs * 2` when refused (see src/binding/rate_limiter.rs).
 */
function unpack(p) {
  if (p % 2 === 0) return { allowed: false, remaining: 0, resetInSeconds: Math.ceil(p / 2000) }
  const rest = (p - 1) / 2
  const remaining = rest % 16777216
  return { allowed: true, remaining, resetInSeconds: (rest - remaining) / 16777216 }
}

/** Most decisions sent to Redis in one script call. */
const MAX_BATCH = 256

const MAX_REQUESTS = 10_000_000
/** Most renewals one leased decision waits for (a burst on a cold id). */
const RENEWALS = 16
/** Default lease time (ms), at most a tenth of the window. */
const LEASE_MS = 1000
/** Most ids the blocked-key cache remembers (the oldest go first). */
const MAX_BLOCKED = 10_000
const MAX_WINDOW_SECONDS = 366 * 24 * 3600

class RateLimiter {
  #core
  #memory
  #clock
  #maxRequests
  #windowSeconds
  #prefix
  #batch = null
  #stats
  #fallback = null
  /** Blocked-key cache: id → the time (ms, on this limiter's clock) until which it is refused. */
  #blocked = null
  /** id → what Redis last said of it: `[remaining, at]` (ms, this limiter's clock), for 'local'. */
  #seen = null
  #native
  /** Leases on this limit's ids (docs/leases.md); null unless `lease` on a Redis store. */
  #lease = null
  #leaseSettings = null

  constructor(store, options) {
    const c = setUp('RateLimiter', store, options, ['maxRequests', 'windowSeconds', 'prefix', 'blockedKeyCache', 'lease'])
    const o = c.options
    this.#stats = c.stats
    this.#maxRequests = o.maxRequests === undefined ? 60 : v.integer(o.maxRequests, 'options.maxRequests', 1, MAX_REQUESTS)
    const windowMs = o.windowSeconds === undefined ? 60_000 : v.seconds(o.windowSeconds, 'options.windowSeconds', MAX_WINDOW_SECONDS)
    this.#windowSeconds = windowMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:ratelimit:' : v.string(o.prefix, 'options.prefix')
    this.#leaseSettings = leaseOptions(o.lease, this.#maxRequests, windowMs, Math.min(LEASE_MS, Math.max(1, Math.round(windowMs / 10))))
    this.#native = c.native
    this.#memory = c.memory
    this.#clock = c.clock
    this.#core = native.rateLimiterNew(c.native, this.#prefix, this.#maxRequests, windowMs)
    const { fallback, policy } = storePolicy('RateLimiter', this.#prefix, c, {
      twin: (store, mark) => new RateLimiter(store, { maxRequests: this.#maxRequests, windowSeconds: this.#windowSeconds, prefix: this.#prefix, ...mark }),
      // A request admitted while Redis was away is recorded there, at its time, once it is back
      // (leased: as a use, through the lease script).
      replay: (op) => (this.#lease !== null ? this.#lease.replay(op.id, op.now) : this.#enqueue(RECORD, op.id, op.now, true)),
    })
    this.#fallback = fallback
    if (!this.#memory && this.#leaseSettings !== null) {
      this.#lease = new Leases(c.native, this.#prefix, 'w', this.#maxRequests, windowMs, this.#leaseSettings, this.#clock, this.#stats)
    } else {
      if (!this.#memory && o.blockedKeyCache !== false) this.#blocked = new Map()
      if (!this.#memory && policy === 'local') this.#seen = new Map()
    }
  }

  /** What this limiter answered, refused and fell back on (see `metrics()` for all classes). */
  stats() {
    return snapshot(this.#stats, this.#fallback, this.#lease === null ? undefined : { lease: this.#lease.report() })
  }

  /** The lease settings in force (`seconds`, `share`, `idleSeconds`), or null without `lease`. */
  get lease() {
    return inForce(this.#leaseSettings)
  }

  /**
   * Gives back what this limiter has leased (unused requests are free for other processes at
   * once); a later call takes a new lease. Resolves when Redis has them; a lease that cannot be
   * given back expires on its own. Call it before closing the store. Without `lease`, resolves
   * at once.
   */
  close() {
    return this.#lease === null ? Promise.resolve() : this.#lease.close()
  }

  /** Pushes counts made during a Redis outage (under 'fail-open' or 'local') to Redis now. */
  flush() {
    return flush(this.#fallback)
  }

  /** The configured limit. */
  get maxRequests() {
    return this.#maxRequests
  }

  get windowSeconds() {
    return this.#windowSeconds
  }

  get prefix() {
    return this.#prefix
  }

  /** Would one more request for `provider` fit? Counts nothing. */
  check(provider) {
    return this.#run(CHECK, provider, 'provider')
  }

  /** Counts one request for `provider` that was made, whether or not it fitted. */
  record(provider) {
    return this.#run(RECORD, provider, 'provider')
  }

  /** Admits and counts one request if it fits, atomically; counts nothing when refused. */
  consume(id) {
    return this.#run(CONSUME, id, 'id')
  }

  #run(code, id, name) {
    try {
      v.id(id, name)
      const now = this.#clock ? this.#clock() : -1
      if (this.#memory) return Promise.resolve(this.#count(unpack(native.rateLimiterRun(this.#core, code, id, now))))
      if (this.#lease !== null) return this.#leased(code, id, now)
      if (this.#blocked !== null && code !== RECORD) {
        const until = this.#blocked.get(id)
        // A closed store rejects, as every call on it does.
        if (until !== undefined && !this.#native.closed) {
          const at = now >= 0 ? now : Date.now()
          if (at < until) {
            this.#stats.blockedLocally++
            return Promise.resolve(this.#count({ allowed: false, remaining: 0, resetInSeconds: Math.ceil((until - at) / 1000) }))
          }
          this.#blocked.delete(id)
        }
      }
      const outage = this.#fallback.skipping()
      if (outage !== null) return this.#fallbackFor(outage, code, id, now, true)
      return this.#enqueue(code, id, now, false)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  // Leased (docs/leases.md): answered from this process's lease on `id` while it has room;
  // else one round trip gives the lease back and takes the next one.
  #leased(code, id, now) {
    const L = this.#lease
    const s = L.state(id)
    const t = now >= 0 ? now : Date.now()
    if (s.pending === null) {
      const room = L.room(s, t)
      if (room > 0) {
        if (code !== CHECK) L.use(s, 1, t)
        return Promise.resolve(this.#count({ allowed: true, remaining: code === CHECK ? room : room - 1, resetInSeconds: Math.ceil((s.end - t) / 1000) }))
      }
      if (t < s.blocked && code !== RECORD) {
        L.demand(s, 1) // asked for, not used: the next ask sizes by it
        this.#stats.blockedLocally++
        return Promise.resolve(this.#count({ allowed: false, remaining: 0, resetInSeconds: Math.ceil((s.blocked - t) / 1000) }))
      }
    }
    return this.#renewed(code, id, now)
  }

  async #renewed(code, id, now) {
    const outage = this.#fallback.skipping()
    if (outage !== null) return this.#fallbackFor(outage, code, id, now, true)
    const L = this.#lease
    try {
      let s = await L.renew(id, 1)
      let t = L.now()
      // What we waited for may have been another caller's renewal, used up meanwhile by the
      // callers ahead, or a lease given back: ask again until the server refuses (each ask
      // at least doubles a lease used up early, so a burst takes a few asks).
      for (let i = 0; i < RENEWALS && L.room(s, t) <= 0 && t >= s.blocked; i++) {
        s = await L.renew(id, 1)
        t = L.now()
      }
      this.#fallback.ok()
      const room = L.room(s, t)
      if (room > 0) {
        if (code !== CHECK) L.use(s, 1, t)
        return this.#count({ allowed: true, remaining: code === CHECK ? room : room - 1, resetInSeconds: Math.ceil((s.end - t) / 1000) })
      }
      // A recorded request counts whether or not it fitted: sent at once, so others see it.
      if (code === RECORD) {
        this.#stats.redisCalls++
        await L.replay(id, now >= 0 ? t : -1)
      }
      if (code !== RECORD) L.demand(s, 1)
      return this.#count({ allowed: false, remaining: 0, resetInSeconds: Math.max(1, Math.ceil((s.blocked - t) / 1000)) })
    } catch (e) {
      return this.#fallbackFor(fromNative(e), code, id, now)
    }
  }

  // Redis: calls made in the same turn of the event loop (a Promise.all, many callers waking
  // together) go to Redis as one script call. Each decision still runs atomically and in
  // order; a lone call is sent alone, at the end of the current turn.
  // A replayed count (`replay`) skips the failure policy: if Redis fails again it stays queued.
  #enqueue(code, id, now, replay) {
    return new Promise((resolve, reject) => {
      let b = this.#batch
      if (b === null) {
        b = this.#batch = { codes: [], ids: [], nows: [], replays: [], settle: [] }
        queueMicrotask(() => this.#send(b))
      }
      b.codes.push(code)
      b.ids.push(id)
      b.nows.push(now)
      b.replays.push(replay)
      b.settle.push(resolve, reject)
      if (b.ids.length >= MAX_BATCH) this.#send(b)
    })
  }

  #send(b) {
    if (this.#batch === b) this.#batch = null
    if (b.sent) return
    b.sent = true
    const fail = (e) => {
      const err = fromNative(e)
      for (let i = 0; i < b.ids.length; i++) {
        const [resolve, reject] = [b.settle[2 * i], b.settle[2 * i + 1]]
        if (b.replays[i]) {
          reject(err)
          continue
        }
        this.#fallbackFor(err, b.codes[i], b.ids[i], b.nows[i]).then(resolve, reject)
      }
    }
    const sentAt = Date.now()
    this.#stats.redisCalls++
    try {
      native.rateLimiterRunBatch(this.#core, b.codes, b.ids, b.nows).then((packed) => {
        for (let i = 0; i < packed.length; i++) {
          const p = packed[i]
          const r = unpack(p)
          // Refused until now + resetMs: nothing but time frees a slot, so later calls for this
          // id are refused here without a command until then. The send time is a lower bound of
          // Redis's own "now", so the local block never outlasts the real one.
          if (p % 2 === 0 && this.#blocked !== null) this.#block(b.ids[i], (b.nows[i] >= 0 ? b.nows[i] : sentAt) + p / 2)
          if (this.#seen !== null) this.#saw(b.ids[i], r.remaining, b.nows[i] >= 0 ? b.nows[i] : sentAt)
          b.settle[2 * i](b.replays[i] ? r : this.#count(r))
        }
        this.#fallback.ok()
      }, fail)
    } catch (e) {
      fail(e)
    }
  }

  #fallbackFor(err, code, id, now, skipped = false) {
    try {
      const open = () => ({ allowed: true, remaining: this.#maxRequests, resetInSeconds: 0 })
      const viaLocal = (l) => {
        this.#seed(l, id)
        return code === CHECK ? l.check(id) : code === RECORD ? l.record(id) : l.consume(id)
      }
      const count = (r) => (code === RECORD || (code === CONSUME && r.allowed) ? { id, now } : null)
      return this.#fallback.handle(err, open, viaLocal, count, skipped).then((r) => this.#count(r))
    } catch (e) {
      return Promise.reject(e)
    }
  }

  // 'local' starts from what this process last saw: the twin is given, for an id Redis last
  // answered at `at` with `remaining` left, the requests it lacks to have as few left, each
  // counted at `at` (no earlier than the real ones, so they never leave its window sooner).
  // Once per id per outage: the twin then counts by itself.
  #saw(id, remaining, at) {
    if (this.#seen.size >= MAX_BLOCKED && !this.#seen.has(id)) this.#seen.delete(this.#seen.keys().next().value)
    this.#seen.set(id, [remaining, at])
  }

  #seed(twin, id) {
    const seen = this.#seen === null ? undefined : this.#seen.get(id)
    if (seen === undefined) return
    this.#seen.delete(id)
    const [remaining, at] = seen
    const lacking = unpack(native.rateLimiterRun(twin.#core, CHECK, id, at)).remaining - remaining
    for (let i = 0; i < lacking; i++) native.rateLimiterRun(twin.#core, RECORD, id, at)
  }

  #block(id, until) {
    if (this.#blocked.size >= MAX_BLOCKED && !this.#blocked.has(id)) this.#blocked.delete(this.#blocked.keys().next().value)
    this.#blocked.set(id, until)
  }

  #count(r) {
    this.#stats.decisions++
    if (!r.allowed) bump(this.#stats.refused, 'limit')
    return r
  }
}

module.exports = { RateLimiter }
