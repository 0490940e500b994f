'use strict'
// TokenBudget: tokens per period per bucket (user, org, API key), with reservations so
// concurrent callers cannot overspend. The algorithm is engine/token_budget.rs.

const native = require('./native')
const { fromNative, rethrow, invalidArg } = require('./errors')
const { bump, snapshot, flush } = require('./policy')
const { setUp, storePolicy } = require('./setup')
const v = require('./validate')
const { totalTokens } = require('./usage')

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

  constructor(store, options) {
    const c = setUp('TokenBudget', store, options, ['maxTokens', 'periodSeconds', 'holdTtlSeconds', 'prefix'])
    const o = c.options
    this.#stats = c.stats
    if (o.maxTokens === undefined) throw invalidArg('options.maxTokens is required')
    this.#maxTokens = v.integer(o.maxTokens, 'options.maxTokens', 0, MAX_TOKENS)
    const periodMs = o.periodSeconds === undefined ? 86_400_000 : v.seconds(o.periodSeconds, 'options.periodSeconds', MAX_PERIOD_SECONDS)
    const holdMs = o.holdTtlSeconds === undefined ? 600_000 : v.seconds(o.holdTtlSeconds, 'options.holdTtlSeconds', MAX_PERIOD_SECONDS)
    this.#periodSeconds = periodMs / 1000
    this.#holdTtlSeconds = holdMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:budget:' : v.string(o.prefix, 'options.prefix')
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
  }

  /** What this budget answered, refused and fell back on. */
  stats() {
    return snapshot(this.#stats, this.#fallback)
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
