'use strict'
// The two stores, and how each class turns its first argument (a store, a Redis URL, an
// ioredis or node-redis client, or nothing) into one.

const native = require('./native')
const { invalidArg, outOfRange, fromNative } = require('./errors')
const v = require('./validate')
const { policyOf, retryMsOf, defaultRetryMs, StoreHealth } = require('./policy')

const kNative = Symbol('tollgate.native')
const kClock = Symbol('tollgate.clock')
/** The store-wide default `onStoreError` of a RedisStore. */
const kPolicy = Symbol('tollgate.onStoreError')

/** Where Quota scopes live in a store, unless a Quota is given another prefix. */
const QUOTA_PREFIX = 'tollgate:quota:'

const DEFAULT_CONNECT_TIMEOUT_MS = 500
const DEFAULT_COMMAND_TIMEOUT_MS = 1000

/** Wraps an injected clock so it is checked on every read; null means the store's own clock. */
function clockOf(now) {
  if (now === undefined || now === null) return null
  v.fn(now, 'options.now')
  return () => {
    const t = now()
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
      throw outOfRange(`options.now() must return milliseconds (a finite number ≥ 0), got ${v.describe(t)}`)
    }
    return t
  }
}

/**
 * State kept in this process: nothing to install, answers synchronously. The default store.
 */
/** Largest `maxKeys` a MemoryStore takes. */
const MAX_KEYS = 2 ** 32 - 1

class MemoryStore {
  #maxKeys
  constructor(options) {
    const o = v.options(options, 'options')
    // No bound by default: evicting a key forgets a limit, so the bound is the caller's choice.
    this.#maxKeys = o.maxKeys === undefined || o.maxKeys === null ? null : v.integer(o.maxKeys, 'options.maxKeys', 1, MAX_KEYS)
    this[kNative] = native.NativeStore.memory(this.#maxKeys ?? undefined)
    this[kClock] = clockOf(o.now)
  }

  /** Live keys (for a store used by one Quota: its scopes, as in rate-budget). */
  size() {
    try {
      return this[kNative].size(this.#now())
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** The key bound (null: none). */
  get maxKeys() {
    return this.#maxKeys
  }

  /** Live keys, the bound, and how many keys the bound evicted (least recently used first). */
  stats() {
    try {
      return { keys: this.size(), maxKeys: this.#maxKeys, evictions: this[kNative].evictions() }
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Drops everything. */
  clear() {
    try {
      this[kNative].clear()
    } catch (e) {
      throw fromNative(e)
    }
  }

  // rate-budget's MemoryStore methods, over the scopes of Quotas with the default prefix.

  /** The state of a Quota scope (a copy, in rate-budget's shape), or undefined. */
  get(scope) {
    const text = native.quotaGet(this.#quotas(), v.string(scope, 'scope'), this.#now())
    return text === null ? undefined : JSON.parse(text)
  }

  /** Replaces the state of a Quota scope. */
  set(scope, state) {
    native.quotaSet(this.#quotas(), v.string(scope, 'scope'), v.json(state ?? { keys: {} }, 'state'), this.#now())
  }

  /** Deletes one Quota scope, or all of them when `scope` is empty or missing. */
  reset(scope) {
    native.quotaReset(this.#quotas(), scope ? v.wellFormed(String(scope), 'scope') : null)
  }

  #quotaCore = null
  #quotas() {
    this.#quotaCore ??= native.quotaNew(this[kNative], QUOTA_PREFIX, [])
    return this.#quotaCore
  }

  #now() {
    const clock = this[kClock]
    return clock ? clock() : -1
  }

  /** True once `close()` was called. */
  get closed() {
    return this[kNative].closed
  }

  /** Closes the store: every later call on it (any class) rejects with ERR_TOLLGATE_STORE_CLOSED. */
  close() {
    this[kNative].close()
    return Promise.resolve()
  }
}

function urlOf(o) {
  const host = o.host === undefined ? '127.0.0.1' : v.id(o.host, 'options.host')
  const port = o.port === undefined ? 6379 : v.integer(o.port, 'options.port', 1, 65535)
  const db = o.db === undefined ? 0 : v.integer(o.db, 'options.db', 0, 1 << 20)
  let auth = ''
  if (o.password !== undefined && o.password !== null && o.password !== '') {
    const user = o.username ? encodeURIComponent(v.string(o.username, 'options.username')) : ''
    auth = `${user}:${encodeURIComponent(v.string(o.password, 'options.password'))}@`
  } else if (o.username) {
    auth = `${encodeURIComponent(v.string(o.username, 'options.username'))}@`
  }
  const scheme = o.tls ? 'rediss' : 'redis'
  const insecure = o.tls && typeof o.tls === 'object' && o.tls.rejectUnauthorized === false
  const h = host.includes(':') ? `[${host}]` : host
  return `${scheme}://${auth}${h}:${port}/${db}${insecure ? '#insecure' : ''}`
}

/** `url` with its password (or a lone user-info part, which may be a token) masked as `***`. */
function redactUrl(url) {
  return String(url).replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i, (_, scheme, userinfo) => {
    const colon = userinfo.indexOf(':')
    return `${scheme}${colon < 0 ? '***' : `${userinfo.slice(0, colon)}:***`}@`
  })
}

/**
 * A Redis URL checked here, so that every malformed one is an ERR_TOLLGATE_INVALID_ARG
 * TypeError whose message shows the URL with its password masked.
 */
function checkUrl(url, name) {
  v.id(url, name)
  const shown = JSON.stringify(redactUrl(url).slice(0, 120))
  if (!/^rediss?:\/\//i.test(url)) {
    throw invalidArg(`${name} must be a redis:// or rediss:// URL, got ${shown}`)
  }
  let u
  try {
    u = new URL(url)
  } catch {
    throw invalidArg(`${name} is not a valid URL (check the host, the port and that special characters in the password are %-encoded), got ${shown}`)
  }
  if (u.hostname === '') throw invalidArg(`${name} has no host, got ${shown}`)
  if (!/^(\/\d*)?$/.test(u.pathname)) throw invalidArg(`${name}: the path must be a database number (/0), got ${shown}`)
  try {
    decodeURIComponent(u.password)
    decodeURIComponent(u.username)
  } catch {
    throw invalidArg(`${name} has a user or password that is not valid %-encoding, got ${shown}`)
  }
  return url
}

const EVICTION_POLICIES = ['warn', 'error', 'ignore']

/**
 * State shared through Redis (or Redis Cluster, or Valkey) by every process that uses the
 * same server. One Lua script — one round trip — per call.
 */
class RedisStore {
  constructor(urlOrOptions, options) {
    let o
    let urls
    let cluster = false
    if (typeof urlOrOptions === 'string') {
      urls = [checkUrl(urlOrOptions, 'url')]
      o = v.options(options, 'options')
    } else {
      o = v.options(urlOrOptions, 'options')
      if (o.cluster !== undefined) {
        if (!Array.isArray(o.cluster) || o.cluster.length === 0) {
          throw invalidArg('options.cluster must be a non-empty array of redis:// URLs')
        }
        urls = o.cluster.map((u, i) => checkUrl(u, `options.cluster[${i}]`))
        cluster = true
      } else if (o.url !== undefined) {
        urls = [checkUrl(o.url, 'options.url')]
      } else {
        urls = [urlOf(o)]
      }
    }
    const connectTimeoutMs =
      o.connectTimeoutMs === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : v.millis(o.connectTimeoutMs, 'options.connectTimeoutMs', 60000)
    const commandTimeoutMs =
      o.commandTimeoutMs === undefined ? DEFAULT_COMMAND_TIMEOUT_MS : v.millis(o.commandTimeoutMs, 'options.commandTimeoutMs', 60000)
    const evictionPolicy = o.evictionPolicy === undefined ? 'warn' : o.evictionPolicy
    if (!EVICTION_POLICIES.includes(evictionPolicy)) {
      throw invalidArg(`options.evictionPolicy must be 'warn', 'error' or 'ignore', got ${v.describe(evictionPolicy)}`)
    }
    const policy = o.onStoreError === undefined ? undefined : policyOf(o, undefined)
    const retryMs = o.storeRetryMs === undefined ? defaultRetryMs(commandTimeoutMs) : retryMsOf(o.storeRetryMs, 'options.storeRetryMs')
    try {
      this[kNative] = native.NativeStore.redis({ urls, cluster, connectTimeoutMs, commandTimeoutMs, evictionPolicy })
    } catch (e) {
      throw fromNative(e)
    }
    this[kClock] = clockOf(o.now)
    // One health state for every class on this store (see StoreHealth).
    const health = new StoreHealth(retryMs, this[kNative], connectTimeoutMs + commandTimeoutMs)
    this[kPolicy] = { policy, retryMs, health }
  }

  /**
   * Whether Redis answers, as every class on this store sees it, and the server's memory
   * settings: `{ status: 'up' | 'down', outage, retryMs, probes, pending, maxmemory,
   * maxmemoryPolicy, evicts }`. Synchronous: no command is sent.
   */
  health() {
    return this[kPolicy].health.report()
  }

  /**
   * A store on the same server, credentials, database and TLS setting as an existing ioredis
   * or node-redis client. tollgate opens its own connection; the client is not used.
   */
  static fromClient(client, options) {
    const o = v.options(options, 'options')
    return new RedisStore({ ...o, ...connectionOf(client) })
  }

  /** True once `close()` was called. */
  get closed() {
    return this[kNative].closed
  }

  /**
   * Ends the connection; later calls reject with ERR_TOLLGATE_STORE_CLOSED. With
   * `{ flush: true }`, first pushes the counts every class on this store queued during an
   * outage (trying for up to `timeoutMs`, default twice the store's call bound), and resolves
   * to `{ left }`: how many could not be pushed (0 when all reached Redis).
   */
  async close(options) {
    const o = v.options(options, 'options')
    const health = this[kPolicy].health
    let left = health.pending
    if (o.flush === true && !this.closed) {
      const timeoutMs = o.timeoutMs === undefined ? undefined : v.millis(o.timeoutMs, 'options.timeoutMs', 3_600_000)
      left = await health.flushAll(timeoutMs)
    }
    health.stop()
    this[kNative].close()
    return { left }
  }
}

/** True when `x` looks like an ioredis or node-redis client (or cluster). */
function isRedisClient(x) {
  return (
    x !== null &&
    typeof x === 'object' &&
    (typeof x.sendCommand === 'function' || typeof x.call === 'function') &&
    (typeof x.options === 'object' || Array.isArray(x.startupNodes))
  )
}

/** Connection settings of an ioredis or node-redis client, as RedisStore options. */
function connectionOf(client) {
  if (!isRedisClient(client)) {
    throw invalidArg('expected an ioredis or node-redis client')
  }
  // ioredis Cluster
  if (client.isCluster && Array.isArray(client.startupNodes)) {
    const ro = (client.options && client.options.redisOptions) || {}
    const cluster = client.startupNodes.map((n) =>
      typeof n === 'string' ? n : urlOf({ host: n.host, port: n.port, username: ro.username, password: ro.password, tls: ro.tls }),
    )
    return { cluster }
  }
  const o = client.options || {}
  // node-redis cluster
  if (Array.isArray(o.rootNodes)) {
    const d = o.defaults || {}
    const cluster = o.rootNodes.map((n) =>
      n.url ? n.url : urlOf({ host: n.socket && n.socket.host, port: n.socket && n.socket.port, username: d.username, password: d.password, tls: n.socket && n.socket.tls }),
    )
    return { cluster }
  }
  // node-redis client: { url?, socket: {host, port, tls}, username, password, database }
  if (o.socket || o.url || o.database !== undefined) {
    if (o.url && !o.socket && o.username === undefined && o.password === undefined && o.database === undefined) {
      return { url: o.url }
    }
    const s = o.socket || {}
    let base = {}
    if (o.url) {
      const u = new URL(checkUrl(o.url, 'client.options.url'))
      base = {
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port ? Number(u.port) : 6379,
        username: u.username ? decodeURIComponent(u.username) : undefined,
        password: u.password ? decodeURIComponent(u.password) : undefined,
        db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
        tls: u.protocol === 'rediss:',
      }
    }
    const tls = s.tls || base.tls
    return {
      host: s.host || base.host,
      port: s.port || base.port,
      username: o.username !== undefined ? o.username : base.username,
      password: o.password !== undefined ? o.password : base.password,
      db: o.database !== undefined ? o.database : base.db,
      // node-redis takes TLS options (rejectUnauthorized, …) on `socket` itself.
      tls: tls && s.rejectUnauthorized === false ? { rejectUnauthorized: false } : tls,
    }
  }
  // ioredis client: { host, port, username, password, db, tls }
  return { host: o.host, port: o.port, username: o.username, password: o.password, db: o.db, tls: o.tls }
}

/**
 * Redis Cluster's hash tag of `key`: what lies between its first `{` and the next `}`, when that
 * is not empty; else null (the whole key is hashed).
 */
function hashTag(key) {
  const open = key.indexOf('{')
  if (open < 0) return null
  const close = key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : null
}

/**
 * Refuses a prefix with which the keys a class builds (`keys`, examples made from the prefix)
 * would not share one non-empty hash tag: on a Redis Cluster its scripts would fail with
 * CROSSSLOT at the first call. Refused on every store, so a move to a Cluster breaks nothing.
 */
function checkSlotPrefix(prefix, keys, name) {
  const tag = hashTag(keys[0])
  if (tag === null || keys.some((k) => hashTag(k) !== tag)) {
    throw invalidArg(
      `${name} ${JSON.stringify(prefix)} would spread this class's keys over several Redis Cluster slots (they must share one non-empty {hash tag}): use a non-empty prefix without braces, or one with a non-empty {tag}`,
    )
  }
  return prefix
}

let defaultStore
/** The process-wide MemoryStore used by classes created without a store. */
function defaultMemoryStore() {
  if (!defaultStore) defaultStore = new MemoryStore()
  return defaultStore
}

const clientStores = new WeakMap()
const urlStores = new Map()

/** A class's first argument as a store. */
function resolveStore(x, name) {
  if (x === undefined || x === null) return defaultMemoryStore()
  if (x instanceof MemoryStore || x instanceof RedisStore) return x
  if (typeof x === 'string') {
    // Classes given the same URL share one connection, as they would share one client.
    let s = urlStores.get(x)
    if (!s || s.closed) {
      s = new RedisStore(x)
      urlStores.set(x, s)
    }
    return s
  }
  if (isRedisClient(x)) {
    let s = clientStores.get(x)
    if (!s) {
      s = RedisStore.fromClient(x)
      clientStores.set(x, s)
    }
    return s
  }
  throw invalidArg(
    `${name}: the first argument must be a MemoryStore, a RedisStore, a Redis URL, an ioredis or node-redis client, or undefined; got ${v.describe(x)}`,
  )
}

function isPlainObject(x) {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false
  const p = Object.getPrototypeOf(x)
  return p === null || p === Object.prototype || Object.getPrototypeOf(p) === null
}

/** `(store, options)` or `(options)`: the store and the options. */
function storeAndOptions(first, second, name) {
  if (second === undefined && isPlainObject(first) && !isRedisClient(first)) {
    return [defaultMemoryStore(), first]
  }
  return [resolveStore(first, name), v.options(second, 'options')]
}

module.exports = {
  QUOTA_PREFIX,
  redactUrl,
  checkSlotPrefix,
  MemoryStore,
  RedisStore,
  resolveStore,
  isRedisClient,
  kNative,
  kClock,
  kPolicy,
  connectionOf,
  storeAndOptions,
  defaultMemoryStore,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_COMMAND_TIMEOUT_MS,
}
