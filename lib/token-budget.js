'use strict'
// TokenBudget: tokens per period per bucket (user, org, API key), with reservations so
// concurrent callers cannot overspend. The algorithm is engine/token_budget.rs.

const native = require('./native')
const { fromNative, rethrow, invalidArg, outOfRange } = require('./errors')
const { bump, snapshot, flush } = require('./policy')
const { setUp, storePolicy } = require('./setup')
const v = require('./validate')
const { totalTokens } = require('./usage')
const { Leases, leaseOptions, inForce } = require('./lease')

const CHECK = 0
const RECORD = 1
const RESERVE = 2
const SETTLE = 3
const RELEASE = 4

/**
 * A decision as numbers (src/binding/token_budget.rs): allowed, used, reserved, remaining,
 * resetInSeconds, and the new hold's period start, sequence (-1: none) and expiry.
 */
const FIELDS = 8

/** The decision object of a native reply `d`; `hold` only for a reservation. */
function decision(d, bucket, tokens, code) {
  const r = { allowed: d[0] === 1, used: d[1], remaining: d[3], resetInSeconds: d[4], reserved: d[2] }
  if (code === RESERVE) r.hold = d[6] < 0 ? null : { bucket, id: `${d[5]}-${d[6]}`, tokens, expiresAt: d[7] }
  return r
}

const MAX_TOKENS = Number.MAX_SAFE_INTEGER
let openHolds = 0
const MAX_PERIOD_SECONDS = 10 * 366 * 24 * 3600

/** Most renewals one leased decision waits for (a burst on a cold bucket). */
const RENEWALS = 16
/** Default lease time (ms). */
const LEASE_MS = 1000
/** Holds made under leases, in all TokenBudgets of this process (their ids are unique). */
let leaseHolds = 0
/** Most reservations made under leases remembered for settle()/release() (the oldest go first). */
const MAX_LEASE_HOLDS = 100_000

/** Most buckets whose last Redis answer is kept for 'local' (the oldest go first). */
const MAX_SEEN = 10_000

class TokenBudget {
  #core
  /** The in-process reply buffer (one per instance: a call finishes before the next starts). */
  #out = new Float64Array(FIELDS)
  #memory
  #clock
  #maxTokens
  #periodSeconds
  #holdTtlSeconds
  #prefix
  #stats
  #fallback = null
  /** bucket → what Redis last said of it: `[used, reserved, at, resetAt]` (ms), for 'local'. */
  #seen = null
  /** Leases on this budget's buckets (docs/leases.md); null unless `lease` on a Redis store. */
  #lease = null
  #leaseSettings = null
  /** Reservations made under a lease: hold id → `{bucket, n, tokens, expiresAt, redisId}`. */
  #leaseHolds = null

  constructor(store, options) {
    const c = setUp('TokenBudget', store, options, ['maxTokens', 'periodSeconds', 'holdTtlSeconds', 'prefix', 'lease'])
    const o = c.options
    this.#stats = c.stats
    if (o.maxTokens === undefined) throw invalidArg('options.maxTokens is required')
    this.#maxTokens = v.integer(o.maxTokens, 'options.maxTokens', 0, MAX_TOKENS)
    const periodMs = o.periodSeconds === undefined ? 86_400_000 : v.seconds(o.periodSeconds, 'options.periodSeconds', MAX_PERIOD_SECONDS)
    const holdMs = o.holdTtlSeconds === undefined ? 600_000 : v.seconds(o.holdTtlSeconds, 'options.holdTtlSeconds', MAX_PERIOD_SECONDS)
    this.#periodSeconds = periodMs / 1000
    this.#holdTtlSeconds = holdMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:budget:' : v.string(o.prefix, 'options.prefix')
    if (o.lease !== undefined && o.lease !== false && this.#maxTokens === 0) {
      throw outOfRange('options.lease needs options.maxTokens of at least 1 (there is nothing to lease)')
    }
    this.#leaseSettings = leaseOptions(o.lease, this.#maxTokens, periodMs, LEASE_MS)
    this.#memory = c.memory
    this.#clock = c.clock
    this.#core = native.tokenBudgetNew(c.native, this.#prefix, this.#maxTokens, periodMs, holdMs)
    const { fallback, policy } = storePolicy('TokenBudget', this.#prefix, c, {
      twin: (store, mark) =>
        new TokenBudget(store, {
          maxTokens: this.#maxTokens,
          periodSeconds: this.#periodSeconds,
          holdTtlSeconds: this.#holdTtlSeconds,
          prefix: this.#prefix,
          ...mark,
        }),
      // What was recorded, settled or released while Redis was away happens there, at its time.
      replay: (op) => native.tokenBudgetRunAsync(this.#core, op.code, op.bucket, op.tokens, op.holdId, op.now).catch(rethrow),
    })
    this.#fallback = fallback
    if (!this.#memory && policy === 'local') this.#seen = new Map()
    if (!this.#memory && this.#leaseSettings !== null) {
      this.#lease = new Leases(c.native, this.#prefix, 'b', this.#maxTokens, periodMs, this.#leaseSettings, this.#clock, this.#stats)
      this.#leaseHolds = new Map()
    }
  }

  /** What this budget answered, refused and fell back on. */
  stats() {
    return snapshot(this.#stats, this.#fallback, this.#lease === null ? undefined : { lease: this.#lease.report() })
  }

  /** The lease settings in force (`seconds`, `share`, `idleSeconds`), or null without `lease`. */
  get lease() {
    return inForce(this.#leaseSettings)
  }

  /**
   * Gives back what this budget has leased (unused tokens are free for other processes at once;
   * reservations still outstanding become holds in Redis); a later call takes a new lease. Call
   * it before closing the store. Without `lease`, resolves at once.
   */
  close() {
    return this.#lease === null ? Promise.resolve() : this.#lease.close()
  }

  /** Pushes what was counted during a Redis outage (under 'fail-open' or 'local') to Redis now. */
  flush() {
    return flush(this.#fallback)
  }

  get maxTokens() {
    return this.#maxTokens
  }

  get periodSeconds() {
    return this.#periodSeconds
  }

  get holdTtlSeconds() {
    return this.#holdTtlSeconds
  }

  get prefix() {
    return this.#prefix
  }

  /** Is there budget left for `bucket`? (`used + reserved < maxTokens`). Counts nothing. */
  check(bucket) {
    return this.#run(CHECK, bucket, 0, undefined)
  }

  /** Adds `tokensUsed` (a number, tollgate's Usage or a provider response) to `bucket`; always counts. */
  record(bucket, tokensUsed) {
    return this.#run(RECORD, bucket, tokensUsed, undefined, 'tokensUsed', true)
  }

  /** Holds `estimate` tokens if they fit; the result's `hold` is null when refused. */
  reserve(bucket, estimate) {
    return this.#run(RESERVE, bucket, estimate, undefined, 'estimate')
  }

  /**
   * Replaces a hold by the tokens the call really used: a number, tollgate's Usage or a
   * provider response (its input tokens, cached included, plus its output tokens).
   */
  settle(hold, actualTokens) {
    return this.#withHold(hold, (h) => this.#run(SETTLE, h.bucket, actualTokens, h.id, 'actualTokens', true))
  }

  /** Drops a hold without counting anything (the call was not made). */
  release(hold) {
    return this.#withHold(hold, (h) => this.#run(RELEASE, h.bucket, 0, h.id))
  }

  #withHold(hold, f) {
    if (hold === null || typeof hold !== 'object' || typeof hold.bucket !== 'string' || typeof hold.id !== 'string') {
      return Promise.reject(invalidArg(`hold must be a hold returned by reserve(), got ${v.describe(hold)}`))
    }
    return f(hold)
  }

  #run(code, bucket, value, holdId, tokensName, usage) {
    try {
      v.id(bucket, 'bucket')
      const tokens = usage ? totalTokens(value, tokensName) : value
      if (tokensName) v.integer(tokens, tokensName, 0, MAX_TOKENS)
      const now = this.#clock ? this.#clock() : -1
      if (this.#memory) {
        native.tokenBudgetRun(this.#core, code, bucket, tokens, holdId, now, this.#out)
        return Promise.resolve(this.#count(decision(this.#out, bucket, tokens, code)))
      }
      if (this.#lease !== null) return this.#leased(code, bucket, tokens, holdId, now)
      return this.#remote(code, bucket, tokens, holdId, now)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** One decision on Redis, under the failure policy. */
  #remote(code, bucket, tokens, holdId, now) {
    try {
      return this.#fallback.run(
        () => native.tokenBudgetRunAsync(this.#core, code, bucket, tokens, holdId, now).then((d) => (this.#saw(bucket, d, now), this.#count(decision(d, bucket, tokens, code))), rethrow),
        () => this.#count(this.#open(code, bucket, tokens, now)),
        (l) => this.#viaLocal(l, code, bucket, tokens, holdId),
        code === RECORD || code === SETTLE || code === RELEASE ? { code, bucket, tokens, holdId, now } : null,
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  // Leased (docs/leases.md): answered from this process's lease on `bucket` while it has room;
  // else one round trip gives the lease back and takes the next one. Reservations made under a
  // lease carry a 'lease:' id and are settled or released here, in-process.
  #leased(code, bucket, tokens, holdId, now) {
    if (code === SETTLE || code === RELEASE) {
      if (!holdId.startsWith('lease:') || !this.#leaseHolds.has(holdId)) return this.#remote(code, bucket, tokens, holdId, now)
      return this.#leasedEnd(code, bucket, tokens, holdId, now)
    }
    const L = this.#lease
    const s = L.state(bucket)
    const t = now >= 0 ? now : Date.now()
    const need = code === RECORD ? tokens : Math.max(1, tokens)
    if (s.pending === null) {
      if (L.room(s, t) >= need && s.n > 0) return Promise.resolve(this.#count(this.#local(code, bucket, tokens, s, t)))
      if (t < s.blocked && code !== RECORD) {
        L.demand(s, need) // asked for, not used: the next ask sizes by it
        this.#stats.blockedLocally++
        return Promise.resolve(this.#count(this.#refused(code, s, t)))
      }
    }
    return this.#renewed(code, bucket, tokens, now, need)
  }

  async #renewed(code, bucket, tokens, now, need) {
    const L = this.#lease
    const open = () => this.#count(this.#open(code, bucket, tokens, now))
    const viaLocal = (l) => this.#viaLocal(l, code, bucket, tokens, '')
    const count = code === RECORD ? { code, bucket, tokens, holdId: '', now } : null
    const outage = this.#fallback.skipping()
    if (outage !== null) return this.#fallback.handle(outage, open, viaLocal, count, true)
    try {
      let s = await L.renew(bucket, need, need)
      let t = L.now()
      // As RateLimiter: ask again while callers ahead used up what came, until refused.
      for (let i = 0; i < RENEWALS && L.room(s, t) < need && t >= s.blocked; i++) {
        s = await L.renew(bucket, need, need)
        t = L.now()
      }
      this.#fallback.ok()
      if (s.n > 0 && L.room(s, t) >= need) return this.#count(this.#local(code, bucket, tokens, s, t))
      // Recorded tokens count whether or not they fit: sent at once, as a plain record.
      if (code === RECORD) return this.#remote(code, bucket, tokens, '', now)
      L.demand(s, need)
      return this.#count(this.#refused(code, s, t))
    } catch (e) {
      return this.#fallback.handle(fromNative(e), open, viaLocal, count)
    }
  }

  async #leasedEnd(code, bucket, tokens, holdId, now) {
    const L = this.#lease
    const s = L.state(bucket)
    // A renewal under way may be turning this reservation into a hold in Redis.
    if (s.pending !== null) await s.pending.catch(() => {})
    const rec = this.#leaseHolds.get(holdId)
    if (rec === undefined) return this.#remote(code, bucket, tokens, holdId, now)
    this.#leaseHolds.delete(holdId)
    const t = L.now()
    if (rec.redisId !== null || s.n !== rec.n || !s.holds.has(holdId)) {
      // Given back with its lease: a hold of its own in Redis now (or none, when it had
      // expired or its period ended: then settle() counts the tokens, as for any unknown hold).
      return this.#remote(code, bucket, tokens, rec.redisId || holdId, now)
    }
    s.holds.delete(holdId)
    s.held -= rec.tokens
    if (code === SETTLE) {
      L.use(s, tokens, t)
      // More than the lease had: Redis must know now, so the lease goes back with its use.
      if (s.used + s.held > s.units) {
        const r = this.#local(CHECK, bucket, 0, s, t)
        r.allowed = false
        await L.renew(bucket, 0).catch(() => {})
        return this.#count(r)
      }
    }
    const r = this.#local(CHECK, bucket, 0, s, t)
    if (code === RELEASE) r.allowed = L.room(s, t) > 0
    return this.#count(r)
  }

  /** A decision answered from the lease of `s` (room checked by the caller). */
  #local(code, bucket, tokens, s, t) {
    const L = this.#lease
    const srv = s.server
    if (code === RECORD) L.use(s, tokens, t)
    let hold
    if (code === RESERVE) {
      s.asked += tokens
      const id = `lease:${process.pid}.${++leaseHolds}`
      const rec = { bucket, n: s.n, tokens, expiresAt: t + this.#holdTtlSeconds * 1000, redisId: null }
      s.held += tokens
      s.holds.set(id, rec)
      if (this.#leaseHolds.size >= MAX_LEASE_HOLDS) this.#leaseHolds.delete(this.#leaseHolds.keys().next().value)
      this.#leaseHolds.set(id, rec)
      hold = { bucket, id, tokens, expiresAt: rec.expiresAt }
    }
    const r = {
      allowed: true,
      used: (srv === null ? 0 : srv[7]) + s.used,
      remaining: Math.max(0, L.room(s, t)),
      resetInSeconds: Math.max(1, Math.ceil((s.periodEnd - t) / 1000)),
      reserved: srv === null ? 0 : srv[8],
    }
    if (code === RESERVE) r.hold = hold
    return r
  }

  #refused(code, s, t) {
    const srv = s.server
    const r = {
      allowed: false,
      used: srv === null ? 0 : srv[7],
      remaining: srv === null ? 0 : srv[5],
      resetInSeconds: srv === null || s.periodEnd <= t ? this.#periodSeconds : Math.max(1, Math.ceil((s.periodEnd - t) / 1000)),
      reserved: srv === null ? 0 : srv[8],
    }
    if (code === RESERVE) r.hold = null
    return r
  }

  // 'local' starts from what this process last saw: the twin is given, for a bucket Redis last
  // answered at `at`, the used tokens and the held ones it lacks (a hold of its own, which
  // expires as the real ones do), counted at `at`. Once per bucket per outage.
  #saw(bucket, d, now) {
    if (this.#seen === null) return
    const at = now >= 0 ? now : Date.now()
    if (this.#seen.size >= MAX_SEEN && !this.#seen.has(bucket)) this.#seen.delete(this.#seen.keys().next().value)
    this.#seen.set(bucket, [d[1], d[2], at, at + d[4] * 1000])
  }

  #seed(twin, bucket) {
    const seen = this.#seen === null ? undefined : this.#seen.get(bucket)
    if (seen === undefined) return
    this.#seen.delete(bucket)
    const [used, reserved, at, resetAt] = seen
    if ((this.#clock ? this.#clock() : Date.now()) >= resetAt) return // a new period: nothing carries over
    const d = twin.#out
    native.tokenBudgetRun(twin.#core, CHECK, bucket, 0, undefined, at, d)
    const [u, r] = [d[1], d[2]]
    if (used > u) native.tokenBudgetRun(twin.#core, RECORD, bucket, used - u, undefined, at, d)
    if (reserved > r) native.tokenBudgetRun(twin.#core, RESERVE, bucket, reserved - r, undefined, at, d)
  }

  // Holds made in-process carry a 'local:' id, which never matches a hold in Redis.
  #viaLocal(l, code, bucket, tokens, holdId) {
    this.#seed(l, bucket)
    const id = holdId !== undefined && holdId.startsWith('local:') ? holdId.slice(6) : holdId
    const hold = { bucket, id, tokens: 0, expiresAt: 0 }
    const r =
      code === CHECK ? l.check(bucket) : code === RECORD ? l.record(bucket, tokens) : code === RESERVE ? l.reserve(bucket, tokens) : code === SETTLE ? l.settle(hold, tokens) : l.release(hold)
    return r.then((x) => {
      if (x.hold) x.hold.id = `local:${x.hold.id}`
      return this.#count(x)
    })
  }

  /** 'fail-open': as if the bucket were empty. */
  #open(code, bucket, tokens, now) {
    const r = { allowed: true, used: 0, remaining: this.#maxTokens, resetInSeconds: this.#periodSeconds, reserved: 0 }
    if (code === RESERVE) {
      const at = now < 0 ? Date.now() : now
      r.hold = { bucket, id: `local:open-${at}-${++openHolds}`, tokens, expiresAt: at + this.#holdTtlSeconds * 1000 }
    }
    return r
  }

  #count(r) {
    this.#stats.decisions++
    if (!r.allowed) bump(this.#stats.refused, 'budget')
    return r
  }
}

module.exports = { TokenBudget }
