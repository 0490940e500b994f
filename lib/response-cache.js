'use strict'
// ResponseCache: exact caching of LLM responses. The default key is SHA-256 of the canonical
// JSON of {model, messages} (engine/cache_key.rs), so property order does not matter.

const native = require('./native')
const { fromNative, rethrow, invalidArg } = require('./errors')
const { storeAndOptions, MemoryStore, kNative, kClock, kPolicy } = require('./stores')
const { kLocalTwin, fallbackOptions, StoreFallback, newStats, track, snapshot } = require('./policy')
const v = require('./validate')

const MAX_TTL_SECONDS = 10 * 366 * 24 * 3600

/** SHA-256 (hex) of the canonical JSON of `{ model, messages }`: the default cache key. */
function requestKey(model, messages) {
  v.id(model, 'model')
  if (!Array.isArray(messages)) throw invalidArg(`messages must be an array, got ${v.describe(messages)}`)
  try {
    return native.requestDigest(v.json({ model, messages }, 'messages'))
  } catch (e) {
    throw fromNative(e)
  }
}

class ResponseCache {
  #core
  #memory
  #clock
  #ttl
  #prefix
  #keyFn
  #stats = newStats()
  #hits = 0
  #fallback = null

  constructor(store, options) {
    const [s, o] = storeAndOptions(store, options, 'ResponseCache')
    const ttlMs = o.ttl === undefined ? 3_600_000 : v.seconds(o.ttl, 'options.ttl', MAX_TTL_SECONDS)
    this.#ttl = ttlMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:cache:' : v.string(o.prefix, 'options.prefix')
    this.#keyFn = o.keyFn === undefined ? null : v.fn(o.keyFn, 'options.keyFn')
    const ns = s[kNative]
    this.#memory = ns.isMemory
    this.#clock = s[kClock]
    this.#core = new native.ResponseCacheCore(ns, ttlMs)
    const { policy, retryMs } = fallbackOptions(o, s[kPolicy])
    if (!this.#memory) {
      const clock = this.#clock
      const local = () =>
        new ResponseCache(new MemoryStore({ now: clock }), {
          ttl: this.#ttl,
          prefix: this.#prefix,
          keyFn: this.#keyFn === null ? undefined : this.#keyFn,
          [kLocalTwin]: true,
        })
      this.#fallback = new StoreFallback(policy, local, () => Promise.resolve(), this.#stats, retryMs)
    }
    if (!o[kLocalTwin]) track('ResponseCache', this.#prefix, this.#stats)
  }

  /** Lookups, hits, misses, and what the store failure policy did. */
  stats() {
    const lookups = this.#stats.decisions
    return snapshot(this.#stats, this.#fallback, {
      hits: this.#hits,
      misses: lookups - this.#hits,
      hitRate: lookups === 0 ? 0 : this.#hits / lookups,
    })
  }

  get ttl() {
    return this.#ttl
  }

  get prefix() {
    return this.#prefix
  }

  /** The store key of a request: `prefix + keyFn(model, messages)`. */
  keyFor(model, messages) {
    if (this.#keyFn === null) return this.#prefix + requestKey(model, messages)
    v.id(model, 'model')
    if (!Array.isArray(messages)) throw invalidArg(`messages must be an array, got ${v.describe(messages)}`)
    const k = this.#keyFn(model, messages)
    if (typeof k !== 'string' || k.length === 0) {
      throw invalidArg(`options.keyFn must return a non-empty string, got ${v.describe(k)}`)
    }
    return this.#prefix + k
  }

  /** The cached response, or null on a miss. A corrupt entry is evicted and is a miss. */
  get(model, messages) {
    try {
      const key = this.keyFor(model, messages)
      const parse = (text) => this.#lookup(this.#parse(key, text))
      const now = this.#now()
      if (this.#memory) return Promise.resolve(parse(this.#core.get(key, now)))
      // 'fail-open' answers a miss; nothing is marked on a cached response (it is the user's).
      return this.#fallback.run(
        () => this.#core.getAsync(key, now).then(parse, rethrow),
        () => this.#lookup(null),
        (l) => l.get(model, messages).then((r) => this.#lookup(r)),
        null,
        false,
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** Caches `response` (anything JSON can hold) for `ttl` seconds, replacing what was there. */
  set(model, messages, response) {
    try {
      const key = this.keyFor(model, messages)
      const text = v.json(response, 'response')
      const now = this.#now()
      if (this.#memory) return Promise.resolve(this.#core.set(key, text, now))
      return this.#fallback.run(
        () => this.#core.setAsync(key, text, now).then(() => undefined, rethrow),
        () => undefined,
        (l) => l.set(model, messages, response),
        null,
        false,
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** Removes the cached response; resolves true when there was one. */
  invalidate(model, messages) {
    try {
      return this.#delete(this.keyFor(model, messages))
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  #lookup(r) {
    this.#stats.decisions++
    if (r !== null) this.#hits++
    return r
  }

  #now() {
    return this.#clock ? this.#clock() : -1
  }

  #delete(key) {
    if (this.#memory) return Promise.resolve(this.#core.delete(key, this.#now()))
    return this.#fallback.run(
      () => this.#core.deleteAsync(key).then(undefined, rethrow),
      () => false,
      (l) => l.#delete(key),
      null,
      false,
    )
  }

  #parse(key, text) {
    if (text === null || text === undefined) return null
    try {
      return JSON.parse(text)
    } catch {
      // Not JSON: evict it and report a miss. The eviction's own failure is not the caller's.
      this.#delete(key).catch(() => {})
      return null
    }
  }
}

module.exports = { ResponseCache, requestKey }
