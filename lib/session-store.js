'use strict'
// SessionStore: conversation state with a TTL. A session that is an object with a `messages`
// array keeps its messages apart (engine/session.rs), so `append` adds messages atomically.

const native = require('./native')
const { fromNative, rethrow, invalidArg, outOfRange, codes } = require('./errors')
const { snapshot } = require('./policy')
const { setUp, storePolicy } = require('./setup')
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
  #stats
  #fallback = null

  constructor(store, options) {
    const c = setUp('SessionStore', store, options, ['ttl', 'prefix', 'maxBytes'])
    const o = c.options
    this.#stats = c.stats
    const ttlMs = o.ttl === undefined ? 1_800_000 : v.seconds(o.ttl, 'options.ttl', MAX_TTL_SECONDS)
    this.#ttl = ttlMs / 1000
    this.#prefix = o.prefix === undefined ? 'tollgate:session:' : v.string(o.prefix, 'options.prefix')
    this.#maxBytes = o.maxBytes === undefined ? null : v.integer(o.maxBytes, 'options.maxBytes', 1, MAX_BYTES)
    this.#memory = c.memory
    this.#clock = c.clock
    this.#core = native.sessionStoreNew(c.native, this.#prefix, ttlMs, this.#maxBytes ?? 0)
    this.#fallback = storePolicy('SessionStore', this.#prefix, c, {
      twin: (store, mark) =>
        new SessionStore(store, { ttl: this.#ttl, prefix: this.#prefix, maxBytes: this.#maxBytes === null ? undefined : this.#maxBytes, ...mark }),
    }).fallback
  }

  /** Calls answered, and what the store failure policy did. */
  stats() {
    return snapshot(this.#stats, this.#fallback)
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
    let head, messages
    try {
      ;[head, messages] = split(data)
      if (this.#maxBytes !== null) {
        const size = Buffer.byteLength(head) + (messages === null ? 0 : Buffer.byteLength(messages))
        if (size > this.#maxBytes) {
          throw outOfRange(`the session is ${size} bytes, over maxBytes (${this.#maxBytes})`, codes.TOO_LARGE)
        }
      }
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    return this.#call(
      sessionId,
      (id, now) => (this.#memory ? native.sessionStoreSave(this.#core, id, head, messages ?? undefined, now) : native.sessionStoreSaveAsync(this.#core, id, head, messages ?? undefined, now)),
      () => undefined,
      (l) => l.save(sessionId, data),
    )
  }

  load(sessionId) {
    return this.#call(sessionId, (id, now) => {
      const parse = (text) => this.#parse(id, text)
      if (this.#memory) return parse(native.sessionStoreLoad(this.#core, id, now))
      return native.sessionStoreLoadAsync(this.#core, id, now).then(parse)
    }, () => null, (l) => l.load(sessionId))
  }

  /**
   * Appends messages to the session's `messages` array atomically (creating the session when
   * missing) and restarts its TTL. Resolves to the session's size in bytes.
   */
  append(sessionId, ...messages) {
    let items
    try {
      if (messages.length === 0) throw invalidArg('append needs at least one message')
      items = messages.map((m, i) => v.json(m, `messages[${i}]`)).join(',')
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    return this.#call(
      sessionId,
      (id, now) => (this.#memory ? native.sessionStoreAppend(this.#core, id, items, now) : native.sessionStoreAppendAsync(this.#core, id, items, now)),
      () => 0,
      (l) => l.append(sessionId, ...messages),
    )
  }

  touch(sessionId) {
    return this.#call(sessionId, (id, now) => (this.#memory ? native.sessionStoreTouch(this.#core, id, now) : native.sessionStoreTouchAsync(this.#core, id, now)), () => false, (l) => l.touch(sessionId))
  }

  /** Deletes the session; resolves true when there was one. */
  destroy(sessionId) {
    return this.#call(sessionId, (id, now) => (this.#memory ? native.sessionStoreDestroy(this.#core, id, now) : native.sessionStoreDestroyAsync(this.#core, id, now)), () => false, (l) => l.destroy(sessionId))
  }

  // `open` and `viaLocal` answer under 'fail-open' and 'local' when Redis cannot.
  #call(sessionId, f, open, viaLocal) {
    try {
      v.id(sessionId, 'sessionId')
      const now = this.#clock ? this.#clock() : -1
      this.#stats.decisions++
      if (this.#memory) return Promise.resolve(f(sessionId, now))
      // Argument errors are thrown before anything is sent, so they never reach the policy.
      return this.#fallback.run(
        () => f(sessionId, now).then(undefined, rethrow),
        open,
        viaLocal,
        null,
        false,
      )
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
