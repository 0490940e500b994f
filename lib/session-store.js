'use strict'
// SessionStore: conversation state with a TTL. A session that is an object with a `messages`
// array keeps its messages apart (engine/session.rs), so `append` adds messages atomically.

const native = require('./native')
const { fromNative, rethrow, invalidArg, outOfRange, codes } = require('./errors')
const { storeAndOptions, kNative, kClock } = require('./stores')
const v = require('./validate')

const MAX_TTL_SECONDS = 10 * 366 * 24 * 3600
const MAX_BYTES = 512 * 1024 * 1024

/** `[head, messages]`: the JSON of the data without `messages`, and of the array (or null). */
function split(data) {
  if (data !== null && typeof data === 'object' && !Array.isArray(data) && Array.isArray(data.messages) && typeof data.toJSON !== 'function') {
    const { messages, ...rest } = data
    return [v.json(rest, 'data'), v.json(messages, 'data.messages')]
  }
  return [v.json(data, 'data'), null]
}

class SessionStore {
  #core
  #memory
  #clock
  #ttl
  #prefix
  #maxBytes

  constructor(store, options) {
    const [s, o] = storeAndOptions(store, options, 'SessionStore')
    const ttlMs = o.ttl === undefined ? 1_800_000 : v.seconds(o.ttl, 'options.ttl', MAX_TTL_SECONDS)
    this.#ttl = ttlMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:session:' : v.string(o.prefix, 'options.prefix')
    this.#maxBytes = o.maxBytes === undefined ? null : v.integer(o.maxBytes, 'options.maxBytes', 1, MAX_BYTES)
    const ns = s[kNative]
    this.#memory = ns.isMemory
    this.#clock = s[kClock]
    this.#core = new native.SessionStoreCore(ns, this.#prefix, ttlMs, this.#maxBytes ?? 0)
  }

  get ttl() {
    return this.#ttl
  }

  get prefix() {
    return this.#prefix
  }

  get maxBytes() {
    return this.#maxBytes
  }

  /** Replaces the session with `data` and restarts its TTL. */
  save(sessionId, data) {
    return this.#call(sessionId, (id, now) => {
      const [head, messages] = split(data)
      if (this.#maxBytes !== null) {
        const size = Buffer.byteLength(head) + (messages === null ? 0 : Buffer.byteLength(messages))
        if (size > this.#maxBytes) {
          throw outOfRange(`the session is ${size} bytes, over maxBytes (${this.#maxBytes})`, codes.TOO_LARGE)
        }
      }
      if (this.#memory) return this.#core.save(id, head, messages, now)
      return this.#core.saveAsync(id, head, messages, now)
    })
  }

  /** The session's data, or null. Does not extend the TTL (see `touch`). */
  load(sessionId) {
    return this.#call(sessionId, (id, now) => {
      const parse = (text) => this.#parse(id, text)
      if (this.#memory) return parse(this.#core.load(id, now))
      return this.#core.loadAsync(id, now).then(parse)
    })
  }

  /**
   * Appends messages to the session's `messages` array atomically (creating the session when
   * missing) and restarts its TTL. Resolves to the session's size in bytes.
   */
  append(sessionId, ...messages) {
    return this.#call(sessionId, (id, now) => {
      if (messages.length === 0) throw invalidArg('append needs at least one message')
      const items = messages.map((m, i) => v.json(m, `messages[${i}]`)).join(',')
      if (this.#memory) return this.#core.append(id, items, now)
      return this.#core.appendAsync(id, items, now)
    })
  }

  /** Restarts the session's TTL without changing it; resolves false when there is none. */
  touch(sessionId) {
    return this.#call(sessionId, (id, now) => (this.#memory ? this.#core.touch(id, now) : this.#core.touchAsync(id, now)))
  }

  /** Deletes the session; resolves true when there was one. */
  destroy(sessionId) {
    return this.#call(sessionId, (id, now) => (this.#memory ? this.#core.destroy(id, now) : this.#core.destroyAsync(id)))
  }

  #call(sessionId, f) {
    try {
      v.id(sessionId, 'sessionId')
      const out = f(sessionId, this.#clock ? this.#clock() : -1)
      return out !== null && typeof out === 'object' && typeof out.then === 'function' ? out.then(undefined, rethrow) : Promise.resolve(out)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  #parse(id, text) {
    if (text === null || text === undefined) return null
    try {
      return JSON.parse(text)
    } catch {
      this.destroy(id).catch(() => {})
      return null
    }
  }
}

module.exports = { SessionStore }
