'use strict'
// RateLimiter: a true sliding window per id (provider, model, API key, …). The algorithm is
// engine/sliding_window.rs; this file validates, picks the store's path and shapes results.

const native = require('./native')
const { fromNative } = require('./errors')
const { storeAndOptions, kNative, kClock } = require('./stores')
const v = require('./validate')

const CHECK = 0
const RECORD = 1
const CONSUME = 2

/** Decisions come from Rust packed into one number: (reset * 2^24 + remaining) * 2 + allowed. */
function unpack(p) {
  const allowed = p % 2 === 1
  const rest = (p - (allowed ? 1 : 0)) / 2
  const remaining = rest % 16777216
  return { allowed, remaining, resetInSeconds: (rest - remaining) / 16777216 }
}

/** Most decisions sent to Redis in one script call. */
const MAX_BATCH = 256

const MAX_REQUESTS = 10_000_000
const MAX_WINDOW_SECONDS = 366 * 24 * 3600

class RateLimiter {
  #core
  #memory
  #clock
  #maxRequests
  #windowSeconds
  #prefix
  #batch = null

  constructor(store, options) {
    const [s, o] = storeAndOptions(store, options, 'RateLimiter')
    this.#maxRequests = o.maxRequests === undefined ? 60 : v.integer(o.maxRequests, 'options.maxRequests', 1, MAX_REQUESTS)
    const windowMs = o.windowSeconds === undefined ? 60_000 : v.seconds(o.windowSeconds, 'options.windowSeconds', MAX_WINDOW_SECONDS)
    this.#windowSeconds = windowMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:ratelimit:' : v.string(o.prefix, 'options.prefix')
    const ns = s[kNative]
    this.#memory = ns.isMemory
    this.#clock = s[kClock]
    this.#core = native.rateLimiterNew(ns, this.#prefix, this.#maxRequests, windowMs)
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
      if (this.#memory) return Promise.resolve(unpack(native.rateLimiterRun(this.#core, code, id, now)))
      return this.#enqueue(code, id, now)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  // Redis: calls made in the same turn of the event loop (a Promise.all, many callers waking
  // together) go to Redis as one script call. Each decision still runs atomically and in
  // order; a lone call is sent alone, at the end of the current turn.
  #enqueue(code, id, now) {
    return new Promise((resolve, reject) => {
      let b = this.#batch
      if (b === null) {
        b = this.#batch = { codes: [], ids: [], nows: [], settle: [] }
        queueMicrotask(() => this.#flush(b))
      }
      b.codes.push(code)
      b.ids.push(id)
      b.nows.push(now)
      b.settle.push(resolve, reject)
      if (b.ids.length >= MAX_BATCH) this.#flush(b)
    })
  }

  #flush(b) {
    if (this.#batch === b) this.#batch = null
    if (b.sent) return
    b.sent = true
    const fail = (e) => {
      for (let i = 1; i < b.settle.length; i += 2) b.settle[i](fromNative(e))
    }
    try {
      native.rateLimiterRunBatch(this.#core, b.codes, b.ids, b.nows).then((packed) => {
        for (let i = 0; i < packed.length; i++) b.settle[2 * i](unpack(packed[i]))
      }, fail)
    } catch (e) {
      fail(e)
    }
  }
}

module.exports = { RateLimiter }
