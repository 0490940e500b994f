'use strict'
// SemanticCache: answers a question from the cached answer of a similar one. Exact request
// first (no embedding call), then the vector index in Rust (engine/semantic/), scoped by
// model and context, with a guard against negated and number-changed questions.

const { performance } = require('node:perf_hooks')
const native = require('./native')
const { fromNative, invalidArg, outOfRange, withCode, codes } = require('./errors')
const { canonical } = require('./canonical')
const { MemoryStore, checkSlotPrefix } = require('./stores')
const { snapshot } = require('./policy')
const { setUp, storePolicy } = require('./setup')
const v = require('./validate')

const MAX_TTL_SECONDS = 10 * 366 * 24 * 3600
const MAX_DIMENSIONS = 65536
const MAX_ENTRIES = 10_000_000
/** Embeddings computed by a missed `get`, kept for the `set` that usually follows. */
const RECENT = 256

function describeMessages(messages) {
  if (!Array.isArray(messages)) throw invalidArg(`messages must be an array, got ${v.describe(messages)}`)
  return messages
}

/** The text of a message's content: a string, or the text parts of a content array. */
function textOf(content) {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    return content
      .map((p) => (typeof p === 'string' ? p : p && typeof p.text === 'string' ? p.text : ''))
      .filter((t) => t.length > 0)
      .join('\n')
  }
  return ''
}

function lastUserIndex(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]
    if (m && typeof m === 'object' && m.role === 'user') return i
  }
  return -1
}

function digest(value) {
  return native.requestDigest(canonical(value, 'request'))
}

/** The vector index's scope: model and context (or the caller's scope), encoded as store keys are. */
function scopeOf(model, kind, rest) {
  return native.storeKey('', [model, kind, rest])
}

/** An embedding as a Float32Array, checked. */
function toVector(e) {
  let out
  if (e instanceof Float32Array) out = e
  else if (Array.isArray(e) || ArrayBuffer.isView(e)) out = Float32Array.from(e)
  else throw invalidArg(`options.embed must return an array of numbers or a Float32Array, got ${v.describe(e)}`)
  if (out.length === 0 || out.length > MAX_DIMENSIONS) {
    throw outOfRange(`an embedding must have 1 to ${MAX_DIMENSIONS} dimensions, got ${out.length}`)
  }
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw outOfRange(`an embedding must hold finite numbers, got ${e[i]} at ${i}`)
  }
  return out
}

class SemanticCache {
  #core
  #memory
  #clock
  #embed
  #threshold
  #scope
  #prefix
  #ttl
  #maxEntries
  #embedTimeoutMs
  #recent = new Map()
  #stats = { hits: 0, exactHits: 0, semanticHits: 0, misses: 0, falseHits: 0, lookups: 0, lookupMs: 0 }
  /** Counters of the store failure policy, shared with `metrics()`. */
  #policyStats
  #fallback = null

  constructor(store, options) {
    const c = setUp('SemanticCache', store, options, ['embed', 'threshold', 'ttl', 'prefix', 'maxEntries', 'scope', 'approximateFrom', 'embedTimeoutMs'])
    const o = c.options
    this.#policyStats = c.stats
    this.#embed = v.fn(o.embed, 'options.embed')
    if (o.threshold === undefined) this.#threshold = 0.95
    else {
      if (typeof o.threshold !== 'number') throw invalidArg(`options.threshold must be a number, got ${v.describe(o.threshold)}`)
      if (!(o.threshold > 0 && o.threshold <= 1)) {
        throw outOfRange(`options.threshold must be a cosine similarity above 0 and at most 1, got ${o.threshold}`)
      }
      this.#threshold = o.threshold
    }
    const ttlMs = o.ttl === undefined ? 3_600_000 : v.seconds(o.ttl, 'options.ttl', MAX_TTL_SECONDS)
    this.#ttl = ttlMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:semantic:' : v.string(o.prefix, 'options.prefix')
    // Its keys are `{prefix}e:<sha256>`, `{prefix}ids`, `{prefix}log` (src/store/redis/semantic.rs).
    checkSlotPrefix(this.#prefix, ['e:0', 'ids', 'log'].map((k) => `{${this.#prefix}}${k}`), 'options.prefix')
    this.#maxEntries = o.maxEntries === undefined ? 10_000 : v.integer(o.maxEntries, 'options.maxEntries', 1, MAX_ENTRIES)
    if (o.scope !== undefined && typeof o.scope !== 'function') v.id(o.scope, 'options.scope')
    this.#scope = o.scope
    this.#embedTimeoutMs = o.embedTimeoutMs === undefined ? 10_000 : v.millis(o.embedTimeoutMs, 'options.embedTimeoutMs', 2 ** 31 - 1)
    const annMin = o.approximateFrom === undefined ? 0 : v.integer(o.approximateFrom, 'options.approximateFrom', 2, MAX_ENTRIES)
    this.#memory = c.memory
    this.#clock = c.clock
    this.#core = native.semanticNew(c.native, this.#prefix, ttlMs, this.#maxEntries, this.#threshold, annMin)
    // Nothing to replay: entries cached in-process during an outage stay there.
    this.#fallback = storePolicy('SemanticCache', this.#prefix, c, {
      twin: (store, mark) =>
        new SemanticCache(store, {
          embed: this.#embed,
          threshold: this.#threshold,
          ttl: this.#ttl,
          prefix: this.#prefix,
          maxEntries: this.#maxEntries,
          scope: this.#scope,
          embedTimeoutMs: this.#embedTimeoutMs,
          ...mark,
        }),
    }).fallback
  }

  /** A Redis call under the `onStoreError` policy (on a MemoryStore: just the call). */
  #viaStore(call, open, viaLocal, mark = false) {
    if (this.#memory) return call()
    return this.#fallback.run(
      () =>
        call().catch((e) => {
          throw fromNative(e)
        }),
      open,
      viaLocal,
      null,
      mark,
    )
  }

  get threshold() {
    return this.#threshold
  }

  get ttl() {
    return this.#ttl
  }

  get prefix() {
    return this.#prefix
  }

  get maxEntries() {
    return this.#maxEntries
  }

  /** The cached answer to this request or to a similar one: `{ hit: true, response, similarity, matchedQuery }`, or `{ hit: false }`. */
  async get(model, messages, options) {
    let started = performance.now()
    let spent = 0
    const done = (result) => {
      this.#stats.lookups++
      this.#stats.lookupMs += spent + performance.now() - started
      return result
    }
    try {
      const r = this.#request(model, messages, options)
      this.#policyStats.decisions++
      const counted = (x) => {
        if (x.hit) this.#stats.hits++
        else this.#stats.misses++
        return x
      }
      return done(
        await this.#viaStore(
          () => this.#lookup(r, (ms) => (spent += ms), (t) => (started = t)),
          () => counted({ hit: false }),
          (l) => l.get(model, messages, options).then((x) => counted({ ...x })),
          true,
        ),
      )
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Exact check, then the embedding and the vector search; counts hits and misses. */
  async #lookup(r, addSpent, restart) {
    let started = performance.now()
    const now = this.#now()
    const exact = this.#memory ? native.semanticGet(this.#core, r.key, now) : await native.semanticGetAsync(this.#core, r.key, now)
    const exactHit = exact ? this.#hit(exact) : null
    if (exactHit) {
      this.#stats.hits++
      this.#stats.exactHits++
      return exactHit
    }
    if (r.text.length > 0) {
      // The embedding call is the caller's time, not the lookup's.
      addSpent(performance.now() - started)
      const vector = toVector(await this.#embedText(r.text))
      started = performance.now()
      restart(started)
      this.#remember(r.key, vector)
      const t = this.#now()
      const scope = r.scope()
      const found = this.#memory ? native.semanticSearch(this.#core, scope, vector, r.text, t) : await native.semanticSearchAsync(this.#core, scope, vector, r.text, t)
      const hit = found ? this.#hit(found) : null
      if (hit) {
        this.#stats.hits++
        this.#stats.semanticHits++
        return hit
      }
    }
    this.#stats.misses++
    return { hit: false }
  }

  /** Caches `response` (anything JSON can hold) for this request, replacing what was there. */
  async set(model, messages, response, options) {
    try {
      const r = this.#request(model, messages, options)
      const json = v.json(response, 'response')
      let vector = null
      if (r.text.length > 0) {
        vector = this.#recent.get(r.key) ?? toVector(await this.#embedText(r.text))
        this.#recent.delete(r.key)
      }
      const now = this.#now()
      const scope = r.scope()
      if (this.#memory) native.semanticSet(this.#core, r.key, scope, r.text, json, vector, now)
      else {
        await this.#viaStore(
          () => native.semanticSetAsync(this.#core, r.key, scope, r.text, json, vector, now),
          () => undefined,
          (l) => {
            if (vector !== null) l.#remember(r.key, vector) // no second embedding call
            return l.set(model, messages, response, options)
          },
        )
      }
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Removes this request's entry; resolves true when there was one. */
  async delete(model, messages, options) {
    try {
      return await this.#deleteKey(this.#request(model, messages, options).key)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * A hit was wrong: evicts the entry that answered it (give the hit `get` returned, or its
   * `key`) and counts it in `stats().falseHits`. Resolves true when the entry was there.
   */
  async reportFalseHit(hit) {
    try {
      const key = typeof hit === 'string' ? hit : hit && typeof hit === 'object' ? hit.key : undefined
      if (typeof key !== 'string' || key.length === 0) {
        throw invalidArg(`reportFalseHit takes a hit returned by get() or its key, got ${v.describe(hit)}`)
      }
      this.#stats.falseHits++
      return await this.#deleteKey(key)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Removes every entry of this cache (its prefix); resolves how many there were. */
  async clear() {
    try {
      this.#recent.clear()
      const now = this.#now()
      if (this.#memory) return native.semanticClear(this.#core, now)
      return await this.#viaStore(
        () => native.semanticClearAsync(this.#core, now),
        () => 0,
        (l) => l.clear(),
      )
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Entries, and this instance's hits, misses, false hits and mean lookup time (ms, without the embedding call). */
  async stats() {
    try {
      const now = this.#now()
      const entries = this.#memory ? native.semanticLen(this.#core, now) : await this.#viaStore(() => native.semanticLenAsync(this.#core, now), () => null, (l) => l.stats().then((x) => x.entries))
      const s = this.#stats
      const asked = s.hits + s.misses
      return {
        entries,
        hits: s.hits,
        exactHits: s.exactHits,
        semanticHits: s.semanticHits,
        misses: s.misses,
        falseHits: s.falseHits,
        hitRate: asked === 0 ? 0 : s.hits / asked,
        avgLookupMs: s.lookups === 0 ? 0 : s.lookupMs / s.lookups,
        ...snapshot(this.#policyStats, this.#fallback),
      }
    } catch (e) {
      throw fromNative(e)
    }
  }

  #request(model, messages, options) {
    v.id(model, 'model')
    describeMessages(messages)
    const o = v.options(options, 'options')
    const i = lastUserIndex(messages)
    const text = i >= 0 ? textOf(messages[i].content) : ''
    let custom = o.scope !== undefined ? o.scope : this.#scope
    if (typeof custom === 'function') {
      custom = custom(model, messages)
      if (typeof custom !== 'string' || custom.length === 0) {
        throw invalidArg(`options.scope must return a non-empty string, got ${v.describe(custom)}`)
      }
    } else if (custom !== undefined) {
      v.id(custom, 'options.scope')
    }
    if (custom === undefined) {
      // Default scope: everything but the last user message (system prompt, earlier turns).
      // Computed only when needed: an exact hit does not pay for it.
      const context = () => (i >= 0 ? messages.filter((_, j) => j !== i) : messages)
      return { key: digest({ model, messages }), scope: () => scopeOf(model, 'c', digest({ model, messages: context() })), text }
    }
    return { key: digest({ model, messages, scope: custom }), scope: () => scopeOf(model, 's', custom), text }
  }

  /** `embed(text)`, refused with ERR_TOLLGATE_CALLBACK_TIMEOUT after `embedTimeoutMs`. */
  #embedText(text) {
    const ms = this.#embedTimeoutMs
    let timer
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(withCode(new Error(`options.embed did not settle within ${ms} ms (options.embedTimeoutMs)`), codes.CALLBACK_TIMEOUT)), ms)
    })
    return Promise.race([Promise.resolve().then(() => this.#embed(text)), late]).finally(() => clearTimeout(timer))
  }

  /** The hit, or null when its response is not JSON (a corrupt entry: evicted, a miss). */
  #hit(found) {
    let response
    try {
      response = JSON.parse(found.response)
    } catch {
      this.#deleteKey(found.key).catch(() => {})
      return null
    }
    return { hit: true, response, similarity: found.similarity, matchedQuery: found.query, key: found.key }
  }

  #remember(key, vector) {
    this.#recent.delete(key)
    this.#recent.set(key, vector)
    if (this.#recent.size > RECENT) this.#recent.delete(this.#recent.keys().next().value)
  }

  #deleteKey(key) {
    const now = this.#now()
    if (this.#memory) return Promise.resolve(native.semanticDelete(this.#core, key, now))
    return this.#viaStore(
      () => native.semanticDeleteAsync(this.#core, key, now),
      () => false,
      (l) => l.#deleteKey(key),
    )
  }

  #now() {
    return this.#clock ? this.#clock() : -1
  }
}

module.exports = { SemanticCache }
