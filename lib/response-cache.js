'use strict'
// ResponseCache: exact caching of LLM responses. The default key is SHA-256 of the canonical
// JSON of the request body {model, messages, ...params} (lib/canonical.js, engine/cache_key.rs),
// so property order does not matter and every parameter that changes an answer is in it.

const native = require('./native')
const { fromNative, rethrow, invalidArg } = require('./errors')
const { canonical } = require('./canonical')
const { snapshot } = require('./policy')
const { setUp, storePolicy } = require('./setup')
const v = require('./validate')

const MAX_TTL_SECONDS = 10 * 366 * 24 * 3600

function checkRequest(model, messages, params) {
  v.id(model, 'model')
  if (!Array.isArray(messages)) throw invalidArg(`messages must be an array, got ${v.describe(messages)}`)
  if (params === undefined || params === null) return
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw invalidArg(`params must be an object of request parameters (temperature, tools, …), got ${v.describe(params)}`)
  }
  // The whole request body may be passed as params; its model and messages must be the ones given.
  if (params.model !== undefined && params.model !== model) {
    throw invalidArg(`params.model (${JSON.stringify(params.model)}) differs from model (${JSON.stringify(model)})`)
  }
  if (params.messages !== undefined && params.messages !== messages) {
    throw invalidArg('params.messages is another array than messages: pass the same request, or leave it out')
  }
}

/**
 * SHA-256 (hex) of the canonical JSON of the request body `{ model, messages, ...params }`:
 * the default cache key. Without params (or with `{}`) it is the key of `{ model, messages }`.
 */
function requestKey(model, messages, params) {
  checkRequest(model, messages, params)
  const body = params === undefined || params === null ? { messages, model } : { ...params, messages, model }
  return native.requestDigest(canonical(body, 'request'))
}

class ResponseCache {
  #core
  #memory
  #clock
  #ttl
  #prefix
  #keyFn
  #stats
  #hits = 0
  #fallback = null

  constructor(store, options) {
    const c = setUp('ResponseCache', store, options, ['ttl', 'prefix', 'keyFn'])
    const o = c.options
    this.#stats = c.stats
    const ttlMs = o.ttl === undefined ? 3_600_000 : v.seconds(o.ttl, 'options.ttl', MAX_TTL_SECONDS)
    this.#ttl = ttlMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:cache:' : v.string(o.prefix, 'options.prefix')
    this.#keyFn = o.keyFn === undefined ? null : v.fn(o.keyFn, 'options.keyFn')
    this.#memory = c.memory
    this.#clock = c.clock
    this.#core = native.responseCacheNew(c.native, this.#prefix, ttlMs)
    this.#fallback = storePolicy('ResponseCache', this.#prefix, c, {
      twin: (store, mark) =>
        new ResponseCache(store, { ttl: this.#ttl, prefix: this.#prefix, keyFn: this.#keyFn === null ? undefined : this.#keyFn, ...mark }),
    }).fallback
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

  /** The store key of a request: `prefix` + the encoded `keyFn(model, messages, params)`. */
  keyFor(model, messages, params) {
    return native.storeKey(this.#prefix, [this.#id(model, messages, params)])
  }

  /** The id of a request under the prefix: the digest, or what keyFn returns. */
  #id(model, messages, params) {
    if (this.#keyFn === null) return requestKey(model, messages, params)
    checkRequest(model, messages, params)
    const k = this.#keyFn(model, messages, params)
    if (typeof k !== 'string' || k.length === 0) {
      throw invalidArg(`options.keyFn must return a non-empty string, got ${v.describe(k)}`)
    }
    return k
  }

  /**
   * The cached response, or null on a miss. A corrupt entry is evicted and is a miss. `params`
   * (temperature, tools, response_format, …, or the whole request body) are part of the key.
   */
  get(model, messages, params) {
    try {
      const key = this.#id(model, messages, params)
      const parse = (text) => this.#lookup(this.#parse(key, text))
      const now = this.#now()
      if (this.#memory) return Promise.resolve(parse(native.responseCacheGet(this.#core, key, now)))
      // 'fail-open' answers a miss; nothing is marked on a cached response (it is the user's).
      return this.#fallback.run(
        () => native.responseCacheGetAsync(this.#core, key, now).then(parse, rethrow),
        () => this.#lookup(null),
        (l) => l.get(model, messages, params).then((r) => this.#lookup(r)),
        null,
        false,
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** Caches `response` (anything JSON can hold) for `ttl` seconds, replacing what was there. */
  set(model, messages, response, params) {
    try {
      const key = this.#id(model, messages, params)
      const text = v.json(response, 'response')
      const now = this.#now()
      if (this.#memory) return Promise.resolve(native.responseCacheSet(this.#core, key, text, now))
      return this.#fallback.run(
        () => native.responseCacheSetAsync(this.#core, key, text, now).then(() => undefined, rethrow),
        () => undefined,
        (l) => l.set(model, messages, response, params),
        null,
        false,
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** Removes the cached response; resolves true when there was one. */
  invalidate(model, messages, params) {
    try {
      return this.#delete(this.#id(model, messages, params))
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
    const now = this.#now()
    if (this.#memory) return Promise.resolve(native.responseCacheDelete(this.#core, key, now))
    return this.#fallback.run(
      () => native.responseCacheDeleteAsync(this.#core, key, now).then(undefined, rethrow),
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
