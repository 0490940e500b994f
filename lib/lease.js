'use strict'
// Leased limits (docs/leases.md): a process takes a share of a Redis limit for a short time in
// one round trip (store/redis/scripts/lease.lua) and answers decisions against it here, in
// process. This file is the whole client side: the settings, the size a process asks for, the
// accounting of one lease, and giving it back (when it ends, when idle, on close, before exit).
// The server side — what counts, what is granted — is the script alone.

const native = require('./native')
const { fromNative, outOfRange } = require('./errors')
const v = require('./validate')

const SETTINGS = ['seconds', 'share', 'idleSeconds']
/** Use times are sent rounded up to this fraction of the window. */
const GRID_PARTS = 100
/** A process asks for its rate over a lease times this. */
const HEADROOM = 1.5
/** After a renewal granted nothing, the id is refused locally for at most this part of L. */
const RETRY_PARTS = 4

let holders = 0
/** Ids whose state (rate, lease) a lease set keeps before it forgets idle ones. */
const MAX_IDS = 10_000
/** Every lease set that may hold something, for 'beforeExit' (weakly: a dropped one's leases
 * expire on their own). */
const live = new Set()
let hooked = false

function hookExit() {
  if (hooked) return
  hooked = true
  // Gives back what is leased when the event loop empties. The returns are new work, so Node
  // runs them and emits 'beforeExit' again; with nothing leased it then exits.
  process.on('beforeExit', () => {
    for (const ref of live) {
      const l = ref.deref()
      if (l === undefined) live.delete(ref)
      else if (l.holding) l.giveBack().catch(() => {})
    }
  })
}

/**
 * The `lease` option of a class: `undefined`/`false` → null, `true` → defaults, an object →
 * validated settings in ms. `max` is the limit, `spanMs` the window or period, `leaseMs` the
 * default lease time, `name` the option's name in errors.
 */
function leaseOptions(x, max, spanMs, defaultLeaseMs, name = 'options.lease') {
  if (x === undefined || x === false) return null
  if (x !== true && (x === null || typeof x !== 'object' || Array.isArray(x))) {
    throw require('./errors').invalidArg(`${name} must be true, false or an object, got ${v.describe(x)}`)
  }
  const o = x === true ? {} : x
  v.knownKeys(o, SETTINGS, name)
  const maxS = spanMs / 1000
  const leaseMs = o.seconds === undefined ? Math.min(defaultLeaseMs, spanMs) : v.seconds(o.seconds, `${name}.seconds`, maxS)
  if (o.share !== undefined && typeof o.share === 'number' && Number.isInteger(o.share) && o.share > max) {
    throw outOfRange(`${name}.share must be at most the limit (${max}), got ${o.share}`)
  }
  const share = o.share === undefined ? max : v.integer(o.share, `${name}.share`, 1, max)
  const idleMs = o.idleSeconds === undefined ? Math.max(1, Math.round(leaseMs / 4)) : v.seconds(o.idleSeconds, `${name}.idleSeconds`, leaseMs / 1000)
  return { leaseMs, share, idleMs }
}

/** The settings as a class's `lease` getter shows them (seconds), or null. */
function inForce(l) {
  return l === null ? null : { seconds: l.leaseMs / 1000, share: l.share, idleSeconds: l.idleMs / 1000 }
}

/**
 * One process's leases on the limits of one class instance, one per id.
 *
 * Per id: `n` lease number (0: none), `units` granted, `used` units used under it (record() can
 * go past `units`), `start` the server's grant time, `at` the local time the request was sent
 * (the base of use offsets), `end` the local time the lease may no longer be used, `cells` uses
 * per grid cell ('w'), `held` units held by outstanding reservations ('b'), `pending` the
 * renewal in flight, `blocked` local time until which a refused id is refused here, and the
 * demand seen (`asked`, since `since`) that sizes the next ask.
 */
class Leases {
  #store
  #prefix
  #mode
  #max
  #spanMs
  #s
  #clock
  #stats
  #gridMs
  #holder
  #ids = new Map()
  #ref = new WeakRef(this)

  /**
   * @param store the NativeStore (Redis)
   * @param prefix the class's key prefix
   * @param mode 'w' (sliding window) | 'b' (budget period)
   * @param max the limit
   * @param spanMs the window or period
   * @param settings from leaseOptions
   * @param clock the store's injected clock, or null
   * @param stats the class's counters (redisCalls)
   */
  constructor(store, prefix, mode, max, spanMs, settings, clock, stats) {
    this.#store = store
    this.#prefix = prefix
    this.#mode = mode
    this.#max = max
    this.#spanMs = spanMs
    this.#s = settings
    this.#clock = clock
    this.#stats = stats
    this.#gridMs = Math.max(1, Math.ceil(spanMs / GRID_PARTS))
    this.#holder = `${process.pid}.${Date.now().toString(36)}.${++holders}`
    live.add(this.#ref)
    hookExit()
  }

  get settings() {
    return this.#s
  }

  now() {
    return this.#clock ? this.#clock() : Date.now()
  }

  /** Whether any id holds a lease (or uses not yet sent). */
  get holding() {
    for (const s of this.#ids.values()) if (s.n > 0 || s.used > 0) return true
    return false
  }

  state(id) {
    let s = this.#ids.get(id)
    if (s === undefined) {
      if (this.#ids.size >= MAX_IDS) this.#evict()
      const mode = this.#mode
      s = { n: 0, units: 0, used: 0, start: 0, at: 0, end: 0, cells: [], held: 0, holds: mode === 'b' ? new Map() : null, period: 0, periodEnd: 0, pending: null, blocked: 0, asked: 0, since: -1, rate: -1, last: 0, timer: null, server: null }
      this.#ids.set(id, s)
    }
    return s
  }

  // Forgets the oldest ids holding nothing (their rate is all they keep), so the map stays
  // bounded however many ids pass through.
  #evict() {
    let n = 0
    for (const [id, s] of this.#ids) {
      if (s.n === 0 && s.pending === null && s.used === 0) {
        this.#ids.delete(id)
        if (++n >= 16) return
      }
    }
  }

  /** Units the lease of `s` still has at `now` (0 when there is none or it ended). */
  room(s, now) {
    return s.n > 0 && now < s.end ? s.units - s.used - s.held : 0
  }

  /** Counts `units` used at `now` under the lease of `s` (units already checked by room()). */
  use(s, units, now) {
    s.used += units
    s.asked += units
    s.last = now
    if (this.#mode === 'w') {
      const cell = Math.ceil(Math.max(0, now - s.at) / this.#gridMs)
      s.cells[cell] = (s.cells[cell] || 0) + units
    }
  }

  /** What the lease of `s` was asked for without room (sizes the next ask). */
  demand(s, units) {
    s.asked += units
  }

  /**
   * 'w': takes back `units` that use() counted at `at` under lease `n` (granted at server time
   * `start`) of `s`, while this process still holds that lease (a guarded call refused by
   * another limit, a settle below its estimate). Once the lease is given back its uses are
   * counted in Redis and stay (never fewer than were used). Whether they were taken back.
   */
  unuse(s, n, start, units, at) {
    if (n === 0 || s.n !== n || s.start !== start) return false
    const cell = Math.ceil(Math.max(0, at - s.at) / this.#gridMs)
    if (!(s.cells[cell] >= units)) return false
    s.cells[cell] -= units
    s.used -= units
    return true
  }

  /**
   * 'w': counts `units` used now whether or not a lease covers them (a guarded call's settle
   * above its estimate, a call admitted while Redis was away): under the live lease of `id`
   * while it has room, else sent at once (the lease, if any, given back with them; with none,
   * they count from the server's clock). Resolves once they are counted; rejects when Redis
   * did not take them (nothing is kept to send again).
   */
  async charge(id, units) {
    if (!(units > 0)) return
    let s = this.state(id)
    while (s.pending !== null) await s.pending.catch(() => {})
    s = this.state(id)
    const now = this.now()
    if (this.room(s, now) >= units) return this.use(s, units, now)
    if (s.n === 0 && s.used === 0) {
      // No lease to count under: uses of "lease 0", timed from the server's clock (-1).
      s.at = now
      s.start = -1
      s.cells = []
    }
    this.use(s, units, now)
    await this.renew(id, 0)
  }

  /**
   * Folds the demand seen since the last sample into the rate (units per ms, the mean of the
   * last sample and the one before it); a sample spans at least a quarter of L, so a burst of
   * renewals a few ms apart does not read as a huge rate.
   */
  #sample(s, now) {
    if (s.since < 0) {
      s.since = now
      s.asked = 0
      return
    }
    if (now - s.since < this.#s.leaseMs / 4) return
    const sample = s.asked / (now - s.since)
    s.rate = s.rate < 0 ? sample : (s.rate + sample) / 2
    s.asked = 0
    s.since = now
  }

  /** The size to ask for: the recent rate over L with headroom, at least `need`, at most share. */
  #want(s, need) {
    const { leaseMs, share } = this.#s
    const base = s.rate < 0 ? (this.#max * leaseMs) / this.#spanMs : s.rate * leaseMs * HEADROOM
    return Math.min(share, Math.max(need, 1, Math.ceil(base)))
  }

  /**
   * leaseRun's numbers (laid out at binding/lease.rs) giving back the lease of `s` (if any)
   * and asking for `want` units (0: none). `extra` is, for 'b', the fewest units worth a lease.
   */
  #call(s, want, extra, now, carry, done) {
    const { leaseMs, share } = this.#s
    // The want, and the demand per window the rate implies (the fair shares weigh it); done:
    // nothing, and the want forgotten.
    const demand = done ? 0 : want > 0 && s.rate >= 0 ? Math.ceil(s.rate * this.#spanMs) : -1
    const a = [this.#mode === 'b' ? 1 : 0, this.#max, this.#spanMs, leaseMs, this.#clock ? now : -1, done ? 0 : want, demand, share, s.n]
    if (this.#mode === 'w') {
      a.push(s.n > 0 || s.used > 0 ? s.start : 0, this.#gridMs)
      for (let i = 0; i < s.cells.length; i++) if (s.cells[i]) a.push(i * this.#gridMs, s.cells[i])
    } else {
      a.push(s.period, extra, s.n > 0 ? s.used : 0, carry !== null ? s.held : 0)
      if (carry === null && s.n > 0) {
        for (const h of s.holds.values()) {
          const left = h.expiresAt - now
          if (left > 0) a.push(h.tokens, Math.ceil(left))
        }
      }
    }
    return a
  }

  /**
   * Gives back the lease of `id` and, with `need` > 0, takes a new one: one round trip.
   * Resolves when `s` holds the new lease (or none, refused until `s.blocked`). Every outcome
   * of the call (a failure too) leaves `s` without its old lease: it is gone from the server or
   * expires there on its own, and is never used again here.
   */
  renew(id, need, extra = 0, keep = false, done = false) {
    const s = this.state(id)
    if (s.pending !== null) return s.pending
    const now = this.now()
    // 'b': open reservations move into the next lease (asking, or kept alive by its timer);
    // a final return (idle, close) turns them into holds in Redis.
    const carry = this.#mode === 'b' && s.n > 0 && (need > 0 || keep) ? s.holds : null
    this.#sample(s, now)
    // A lease used up before its end was too small: at least double it (the rate alone lags).
    const grown = s.n > 0 && now < s.end && this.room(s, now) < need ? 2 * s.units : 0
    const want = need > 0 ? Math.min(this.#s.share, Math.max(grown, this.#want(s, need))) : 0
    const args = this.#call(s, want, extra, now, carry, done)
    const holds = s.holds
    const held = s.held
    const period = s.period
    this.#forget(s)
    this.#stats.redisCalls++
    let call
    try {
      call = native.leaseRun(this.#store, this.#prefix, id, this.#holder, args)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    s.pending = call.then(
      (r) => {
        s.pending = null
        this.#took(id, s, r, now, holds, carry !== null ? held : 0, period)
        return s
      },
      (e) => {
        s.pending = null
        throw fromNative(e)
      },
    )
    return s.pending
  }

  /** Clears the lease of `s` (after its return was sent). */
  #forget(s) {
    s.n = 0
    s.units = 0
    s.used = 0
    s.held = 0
    s.cells = []
    s.end = 0
    if (s.timer !== null) clearTimeout(s.timer)
    s.timer = null
    if (s.holds !== null) s.holds = new Map()
  }

  /** Takes in leaseRun's reply `r` (its layout at binding/lease.rs). */
  #took(id, s, r, sent, holds, carried, period) {
    const [n, units, srvNow, expires, wait] = r
    s.server = r
    if (this.#mode === 'b') {
      s.period = r[6]
      s.periodEnd = sent + (r[6] + this.#spanMs - srvNow)
      if (carried > 0 && n > 0 && r[6] === period) {
        // Carried into the new lease: the same reservations, now under lease n.
        for (const h of holds.values()) h.n = n
        s.holds = holds
        s.held = carried
      } else if (carried > 0) {
        // Their period ended: like any hold of a finished period, they no longer count.
        for (const h of holds.values()) h.redisId = 'ended'
      } else if (holds !== null) {
        // Outstanding reservations of the lease given back are holds of their own in Redis now.
        let i = 9
        for (const h of holds.values()) {
          if (h.expiresAt - sent <= 0) continue
          const k = r[i++]
          h.redisId = k > 0 ? `${s.period}-${k}` : 'ended'
        }
      }
    }
    if (n === 0) {
      s.blocked = wait > 0 ? sent + Math.min(wait, Math.max(1, this.#s.leaseMs / RETRY_PARTS)) : 0
      // Given back with nothing asked by an id idle for a whole lease time: forgotten.
      if (wait === 0 && this.now() - s.last >= this.#s.leaseMs) this.#ids.delete(id)
      return
    }
    s.n = n
    s.units = units
    s.start = srvNow
    s.at = sent
    s.end = sent + (expires - srvNow)
    s.last = sent
    s.blocked = 0
    this.#arm(id, s)
  }

  // Gives the lease back when it ends, or earlier once unused for idleMs. Unref'd: a lease
  // never keeps Node alive ('beforeExit' gives back what is left).
  #arm(id, s) {
    const n = s.n
    const tick = () => {
      s.timer = null
      if (s.n !== n || s.pending !== null) return
      const now = this.now()
      if (now >= s.end || now - s.last >= this.#s.idleMs) {
        if (s.held > 0 && now < s.end) return this.#later(id, s, tick, s.end - now)
        // Open reservations of a process still at work ride on into a lease of just them.
        this.renew(id, 0, 0, s.held > 0 && now - s.last < this.#s.idleMs * 4).catch(() => {})
        return
      }
      this.#later(id, s, tick, Math.min(s.end, s.last + this.#s.idleMs) - now)
    }
    this.#later(id, s, tick, Math.min(this.#s.idleMs, s.end - s.at))
  }

  #later(id, s, f, ms) {
    s.timer = setTimeout(f, Math.max(1, ms))
    if (typeof s.timer.unref === 'function') s.timer.unref()
  }

  /** Gives back every lease (a later decision takes a new one). */
  close() {
    return this.giveBack()
  }

  /** Gives every lease back; resolves once Redis has them (errors: they expire on their own). */
  async giveBack() {
    const calls = []
    for (const [id, s] of this.#ids) {
      if (s.pending !== null) calls.push(s.pending.catch(() => {}))
    }
    await Promise.all(calls)
    const back = []
    for (const [id, s] of this.#ids) {
      // The holder is done: its want goes too, so no fair share is kept for it. (An id given
      // back earlier keeps its last want until it expires, at most 2 lease times.)
      if (s.n > 0 || s.used > 0) back.push(this.renew(id, 0, 0, false, true).catch(() => {}))
    }
    await Promise.all(back)
  }

  /** What `stats().lease` shows: ids holding a lease, units leased and used under them, ids known. */
  report() {
    let ids = 0
    let units = 0
    let used = 0
    const now = this.now()
    for (const s of this.#ids.values()) {
      if (s.n > 0 && now < s.end) {
        ids++
        units += s.units
        used += s.used
      }
    }
    return { ids, units, used, known: this.#ids.size }
  }

  /**
   * Clears the limit of `id` for every process: this process's lease is given back, then the
   * lease key deleted (what every holder counted on it). Other processes' live leases still
   * answer until they end (at most a lease time).
   */
  async reset(id) {
    await this.renew(id, 0, 0, false, true).catch(() => {})
    this.#stats.redisCalls++
    try {
      await native.leaseDrop(this.#store, this.#prefix, id)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Counts one use made while Redis was away (replayed by the class's failure policy). */
  replay(id, now) {
    const at = now >= 0 ? now : -1
    const a = [this.#mode === 'b' ? 1 : 0, this.#max, this.#spanMs, this.#s.leaseMs, at, 0, -1, this.#s.share, 0, at, this.#gridMs, 0, 1]
    try {
      return native.leaseRun(this.#store, this.#prefix, id, this.#holder, a).catch((e) => {
        throw fromNative(e)
      })
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }
}

module.exports = { Leases, leaseOptions, inForce, SETTINGS }
