'use strict'
// TokenBudget: tokens per period per bucket (user, org, API key), with reservations so
// concurrent callers cannot overspend. The algorithm is engine/token_budget.rs.

const native = require('./native')
const { fromNative, rethrow, invalidArg } = require('./errors')
const { storeAndOptions, kNative, kClock } = require('./stores')
const v = require('./validate')

const CHECK = 0
const RECORD = 1
const RESERVE = 2
const SETTLE = 3
const RELEASE = 4

const MAX_TOKENS = Number.MAX_SAFE_INTEGER
const MAX_PERIOD_SECONDS = 10 * 366 * 24 * 3600

class TokenBudget {
  #core
  #memory
  #clock
  #maxTokens
  #periodSeconds
  #holdTtlSeconds
  #prefix

  constructor(store, options) {
    const [s, o] = storeAndOptions(store, options, 'TokenBudget')
    if (o.maxTokens === undefined) throw invalidArg('options.maxTokens is required')
    this.#maxTokens = v.integer(o.maxTokens, 'options.maxTokens', 0, MAX_TOKENS)
    const periodMs = o.periodSeconds === undefined ? 86_400_000 : v.seconds(o.periodSeconds, 'options.periodSeconds', MAX_PERIOD_SECONDS)
    const holdMs = o.holdTtlSeconds === undefined ? 600_000 : v.seconds(o.holdTtlSeconds, 'options.holdTtlSeconds', MAX_PERIOD_SECONDS)
    this.#periodSeconds = periodMs / 1000
    this.#holdTtlSeconds = holdMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:budget:' : v.string(o.prefix, 'options.prefix')
    const ns = s[kNative]
    this.#memory = ns.isMemory
    this.#clock = s[kClock]
    this.#core = new native.TokenBudgetCore(ns, this.#prefix, this.#maxTokens, periodMs, holdMs)
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
    return this.#run(CHECK, bucket, 0, '')
  }

  /** Adds `tokensUsed` to `bucket`; always counts. */
  record(bucket, tokensUsed) {
    return this.#run(RECORD, bucket, tokensUsed, '', 'tokensUsed')
  }

  /** Holds `estimate` tokens if they fit; the result's `hold` is null when refused. */
  reserve(bucket, estimate) {
    return this.#run(RESERVE, bucket, estimate, '', 'estimate')
  }

  /** Replaces a hold by the tokens the call really used. */
  settle(hold, actualTokens) {
    return this.#withHold(hold, (h) => this.#run(SETTLE, h.bucket, actualTokens, h.id, 'actualTokens'))
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

  #run(code, bucket, tokens, holdId, tokensName) {
    try {
      v.id(bucket, 'bucket')
      if (tokensName) v.integer(tokens, tokensName, 0, MAX_TOKENS)
      const now = this.#clock ? this.#clock() : -1
      const shape = (d) => this.#result(d, bucket, tokens, code)
      if (this.#memory) return Promise.resolve(shape(this.#core.run(code, bucket, tokens, holdId, now)))
      return this.#core.runAsync(code, bucket, tokens, holdId, now).then(shape, rethrow)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  #result(d, bucket, tokens, code) {
    const r = {
      allowed: d.allowed,
      used: d.used,
      remaining: d.remaining,
      resetInSeconds: d.resetInSeconds,
      reserved: d.reserved,
    }
    if (code === RESERVE) {
      r.hold = d.holdId ? { bucket, id: d.holdId, tokens, expiresAt: d.holdExpiresAt } : null
    }
    return r
  }
}

module.exports = { TokenBudget }
