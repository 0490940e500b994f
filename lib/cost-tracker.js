'use strict'
// CostTracker: dollars spent per UTC day and month, per tag, with budgets, reservations and
// alerts — the cost patterns article's CostTracker made atomic and exact. The ledger is engine/spend.rs.

const native = require('./native')
const { fromNative, rethrow, invalidArg, outOfRange } = require('./errors')
const { MemoryStore, checkSlotPrefix } = require('./stores')
const { bump, snapshot, flush } = require('./policy')
const { setUp, storePolicy } = require('./setup')
const { costNano, priceFor, toNano, toUsd } = require('./cost')
const v = require('./validate')

const CHECK = 0
const TOTALS = 1
const RECORD = 2
const RESERVE = 3
const SETTLE = 4
const RELEASE = 5

/** Largest amount in USD: nano-dollars stay exact integers below 2^53. */
const MAX_USD = 9_000_000
const MAX_TAGS = 32
const MAX_HOLD_SECONDS = 7 * 24 * 3600
/** Days of history kept and read at most; hours read at most (hour buckets live 48 h). */
const MAX_HISTORY_DAYS = 400
const MAX_HISTORY_HOURS = 48
const DAY_MS = 86_400_000

/** Reply numbers before the alerts; the buffer adds two per threshold and period. */
const FIELDS = 10

// The label of the day ending at `endsAt`, remembered: a day has one label all day long.
let lastEndsAt = NaN
let lastDay = ''
function dayLabel(endsAt) {
  if (endsAt !== lastEndsAt) {
    lastDay = new Date(endsAt - DAY_MS).toISOString().slice(0, 10)
    lastEndsAt = endsAt
  }
  return lastDay
}

/**
 * A decision's numbers (src/binding/cost_tracker.rs: the layout) as an object, the same from
 * either path: `[allowed, dayEndsAt, daySpent, dayReserved, monthEndsAt, monthSpent,
 * monthReserved, hold sequence (-1: none), hold expiresAt, alerts n, (period 0 day | 1 month,
 * threshold) × n]`. The day's label is the UTC date of its start, a hold's id
 * `<day's label>#<sequence>`.
 */
function decode(r) {
  const dayEndsAt = r[1]
  const day = dayLabel(dayEndsAt)
  const n = r[9]
  const alertPeriods = []
  const alertThresholds = []
  for (let i = 0; i < n; i++) {
    alertPeriods.push(r[10 + 2 * i] === 0 ? 'daily' : 'monthly')
    alertThresholds.push(r[11 + 2 * i])
  }
  const held = r[7] >= 0
  return {
    allowed: r[0] === 1,
    day,
    dayEndsAt,
    daySpent: r[2],
    dayReserved: r[3],
    month: day.slice(0, 7),
    monthEndsAt: r[4],
    monthSpent: r[5],
    monthReserved: r[6],
    holdId: held ? `${day}#${r[7]}` : undefined,
    holdExpiresAt: held ? r[8] : undefined,
    alertPeriods,
    alertThresholds,
    tags: null,
  }
}

function amount(x, name) {
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number of USD, got ${v.describe(x)}`)
  if (!Number.isFinite(x) || x < 0 || x > MAX_USD) throw outOfRange(`${name} must be from 0 to ${MAX_USD} USD, got ${x}`)
  return x
}

function budgetOption(x, name, fallback) {
  if (x === undefined) return fallback
  if (x === null || x === Infinity) return null
  return amount(x, name)
}

/** `{feature: 'chat', user: 'u1'}` → ['feature=chat', 'user=u1']; undefined for none. */
function tagList(tags, name) {
  if (tags === undefined || tags === null) return undefined
  if (typeof tags !== 'object' || Array.isArray(tags)) throw invalidArg(`${name} must be an object of tag → value, got ${v.describe(tags)}`)
  const out = []
  for (const [key, value] of Object.entries(tags)) {
    if (value === undefined || value === null) continue
    if (key.length === 0 || key.includes('=')) throw invalidArg(`${name} keys must be non-empty and contain no '=', got ${JSON.stringify(key)}`)
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw invalidArg(`${name}.${key} must be a string, number or boolean, got ${v.describe(value)}`)
    }
    // A tag is a field `key=value` read back by totals(): refused rather than encoded when it
    // holds a lone surrogate, so two tags never share a field.
    out.push(v.wellFormed(v.id(`${key}=${value}`, `${name}.${key}`), `${name}.${key}`))
  }
  if (out.length > MAX_TAGS) throw outOfRange(`${name} may hold at most ${MAX_TAGS} tags, got ${out.length}`)
  return out.length === 0 ? undefined : out
}

/** A point of the native history (`{label, start, nano, models, tags}`, names and amounts as
 * `[name, nano]` pairs) → `{ date | hour, start, spent, byModel, byTag? }` in USD. */
function point(p, label) {
  const out = { [label]: p.label, start: p.start, spent: toUsd(p.nano), byModel: {} }
  for (const [name, nano] of p.models) out.byModel[name] = toUsd(nano)
  if (label === 'date') {
    out.byTag = {}
    byTag(p.tags, out.byTag)
  }
  return out
}

/** History with nothing spent (under 'fail-open' / 'local' while Redis is away: nothing is known). */
function emptyHistory(days, hours, now) {
  const day = Math.floor(now / DAY_MS) * DAY_MS
  const hour = Math.floor(now / 3_600_000) * 3_600_000
  const list = (n, last, step, len) =>
    Array.from({ length: n }, (_, i) => last - (n - 1 - i) * step)
      .filter((t) => t >= 0)
      .map((start) => ({ label: new Date(start).toISOString().slice(0, len), start, nano: 0, models: [], tags: [] }))
  return { days: list(days, day, DAY_MS, 10), hours: list(hours, hour, 3_600_000, 13) }
}

/** Adds a list of `["key=value", nano]` to `into` as `{key: {value: usd}}`. */
function byTag(list, into) {
  for (const [tag, nano] of list) {
    const i = tag.indexOf('=')
    ;(into[tag.slice(0, i)] ??= {})[tag.slice(i + 1)] = toUsd(nano)
  }
}

function defaultAlert(message) {
  console.warn(`[COST ALERT] ${message}`)
}

class CostTracker {
  #core
  /** The reply buffer of in-process decisions (see `decode`). */
  #out
  #memory
  #clock
  #dailyBudget
  #monthlyBudget
  #thresholds
  #onAlert
  #prefix
  #holdMs
  #historyDays
  #stats
  #fallback = null
  /** What Redis last answered, `[decision, at]`, for 'local' (null: nothing to carry over). */
  #seen = null
  #seeding = false
  #openHolds = 0

  /**
   * @param store a MemoryStore (default), RedisStore, Redis URL or client
   * @param options budgets in USD (`null` for none), alert thresholds, `onAlert`, `prefix`
   */
  constructor(store, options) {
    const c = setUp('CostTracker', store, options, ['dailyBudget', 'monthlyBudget', 'alertThreshold', 'alertThresholds', 'onAlert', 'holdTtlSeconds', 'historyDays', 'prefix', 'now'])
    const o = c.options
    this.#stats = c.stats
    this.#dailyBudget = budgetOption(o.dailyBudget, 'options.dailyBudget', 50)
    this.#monthlyBudget = budgetOption(o.monthlyBudget, 'options.monthlyBudget', 1000)
    if (o.alertThreshold !== undefined && o.alertThresholds !== undefined) {
      throw invalidArg('pass options.alertThreshold or options.alertThresholds, not both')
    }
    const thresholds = o.alertThresholds !== undefined ? o.alertThresholds : [o.alertThreshold === undefined ? 0.8 : o.alertThreshold]
    if (!Array.isArray(thresholds)) throw invalidArg(`options.alertThresholds must be an array of fractions, got ${v.describe(thresholds)}`)
    this.#thresholds = [
      ...new Set(
        thresholds.map((t, i) => {
          if (typeof t !== 'number') throw invalidArg(`alert thresholds must be numbers, got ${v.describe(t)} at ${i}`)
          if (!Number.isFinite(t) || t <= 0 || t > 10) throw outOfRange(`alert thresholds must be fractions above 0 and at most 10, got ${t}`)
          return t
        }),
      ),
    ].sort((a, b) => a - b)
    this.#onAlert = o.onAlert === undefined ? defaultAlert : v.fn(o.onAlert, 'options.onAlert')
    const holdMs = o.holdTtlSeconds === undefined ? 600_000 : v.seconds(o.holdTtlSeconds, 'options.holdTtlSeconds', MAX_HOLD_SECONDS)
    this.#historyDays = o.historyDays === undefined ? 35 : v.integer(o.historyDays, 'options.historyDays', 1, MAX_HISTORY_DAYS)
    this.#prefix = o.prefix === undefined ? 'tollgate:cost:' : v.string(o.prefix, 'options.prefix')
    this.#clock = o.now === undefined ? c.clock : v.fn(o.now, 'options.now')
    const ns = c.native
    this.#memory = c.memory
    // Every key of the tracker shares one hash tag, so a decision is one script on a Cluster.
    const base = this.#prefix.includes('{') ? this.#prefix : `{${this.#prefix}}`
    checkSlotPrefix(this.#prefix, [`${base}day:2026-01-01`, `${base}month:2026-01`, `${base}day:2026-01-01:tags`, `${base}hour:2026-01-01T00`], 'options.prefix')
    const nano = (b) => (b === null ? -1 : toNano(b))
    this.#core = native.costTrackerNew(ns, base, nano(this.#dailyBudget), nano(this.#monthlyBudget), holdMs, this.#thresholds, this.#historyDays * DAY_MS)
    this.#out = new Float64Array(FIELDS + 4 * this.#thresholds.length)
    this.#holdMs = holdMs
    const { fallback, policy } = storePolicy('CostTracker', this.#prefix, c, {
      clock: this.#clock,
      twin: (store, mark) =>
        new CostTracker(store, {
          dailyBudget: this.#dailyBudget,
          monthlyBudget: this.#monthlyBudget,
          alertThresholds: this.#thresholds,
          holdTtlSeconds: holdMs / 1000,
          historyDays: this.#historyDays,
          prefix: this.#prefix,
          onAlert: () => {}, // alerts are Redis-wide: a local twin would fire them once per process
          ...mark,
        }),
      // Spend recorded, settled or released while Redis was away happens there, on its day.
      replay: (op) => native.costTrackerRunAsync(this.#core, op.code, op.nano, op.holdId, op.tags, op.model, op.now).then((r) => this.#alert(decode(r)), rethrow),
    })
    this.#fallback = fallback
    this.#seeding = !this.#memory && policy === 'local'
  }

  /** Calls answered, refusals, and what the store failure policy did. */
  stats() {
    return snapshot(this.#stats, this.#fallback)
  }

  /** Pushes spend counted during a Redis outage (under 'fail-open' or 'local') to Redis now. */
  flush() {
    return flush(this.#fallback)
  }

  get dailyBudget() {
    return this.#dailyBudget
  }

  get monthlyBudget() {
    return this.#monthlyBudget
  }

  get alertThresholds() {
    return [...this.#thresholds]
  }

  get prefix() {
    return this.#prefix
  }

  /** How many days after it ends a day's spend stays readable by `history()`. */
  get historyDays() {
    return this.#historyDays
  }

  /**
   * Adds what a call cost and returns the cost in USD. Either `(model, usage, {tags})` with
   * tollgate's usage shape or a provider response, or the cost patterns article's
   * `(model, inputTokens, outputTokens, tags)`.
   */
  recordUsage(model, usage, outputTokensOrOptions, tags) {
    try {
      let nano, t
      if (typeof usage === 'number') {
        nano = costNano({ inputTokens: usage, outputTokens: outputTokensOrOptions }, model)
        t = tagList(tags, 'metadata')
      } else {
        nano = costNano(usage, model)
        t = tagList(v.options(outputTokensOrOptions, 'options').tags, 'options.tags')
      }
      return this.#run(RECORD, nano, undefined, t, model).then(() => toUsd(nano))
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** Adds a cost already known in USD (a tool call, an image). Resolves to the totals. */
  recordCost(usd, options) {
    try {
      const t = tagList(v.options(options, 'options').tags, 'options.tags')
      return this.#run(RECORD, toNano(amount(usd, 'usd')), undefined, t).then((d) => this.#totals(d))
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /**
   * Holds `estimateUsd` against the daily and monthly budgets if it fits in both
   * (`spent + reserved + estimate ≤ budget`); `hold` is null when refused. `model` and `tags`
   * are kept on the hold for `settle`.
   */
  reserve(estimateUsd, options) {
    try {
      const o = v.options(options, 'options')
      const estimate = amount(estimateUsd, 'estimateUsd')
      // A model without a price is refused now, before the call is made, not at settle.
      const model = o.model === undefined ? undefined : (priceFor(o.model), o.model)
      const tags = o.tags === undefined ? undefined : (tagList(o.tags, 'options.tags'), o.tags)
      return this.#run(RESERVE, toNano(estimate)).then((d) => {
        const hold = d.holdId ? { id: d.holdId, estimateUsd: estimate, expiresAt: d.holdExpiresAt } : null
        if (hold && model !== undefined) hold.model = model
        if (hold && tags !== undefined) hold.tags = tags
        return { allowed: d.allowed, hold, ...this.#totals(d) }
      })
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /**
   * Replaces a hold by what the call really cost: `usage` in USD, or a usage object / provider
   * response priced with the hold's model (or `options.model`). Resolves to the cost and totals.
   */
  settle(hold, usage, options) {
    try {
      const h = this.#hold(hold)
      const o = v.options(options, 'options')
      let nano
      const model = o.model !== undefined ? o.model : h.model
      if (typeof usage === 'number') {
        nano = toNano(amount(usage, 'usage'))
      } else {
        if (model === undefined) throw invalidArg('settle() with a usage object needs a model: reserve(estimate, { model }) or settle(hold, usage, { model })')
        nano = costNano(usage, model)
      }
      const tags = tagList(o.tags !== undefined ? o.tags : h.tags, o.tags !== undefined ? 'options.tags' : 'hold.tags')
      return this.#run(SETTLE, nano, h.id, tags, typeof model === 'string' ? model : undefined).then((d) => ({ cost: toUsd(nano), allowed: d.allowed, ...this.#totals(d) }))
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** Drops a hold without counting anything (the call was not made). */
  release(hold) {
    try {
      const h = this.#hold(hold)
      return this.#run(RELEASE, 0, h.id).then((d) => this.#totals(d))
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /** The cost patterns article's answer: `spent ≥ budget` per period, and what was spent. */
  isOverBudget() {
    try {
      return this.#run(CHECK, 0).then((d) => {
        const dailySpent = toUsd(d.daySpent)
        const monthlySpent = toUsd(d.monthSpent)
        return {
          daily: this.#dailyBudget !== null && dailySpent >= this.#dailyBudget,
          monthly: this.#monthlyBudget !== null && monthlySpent >= this.#monthlyBudget,
          dailySpent,
          monthlySpent,
        }
      })
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /**
   * Today's and this month's totals, with the spend per tag (`{feature: {chat: 1.2}}`) unless
   * `{ tags: false }` (cheaper: the tag hashes are not read).
   */
  totals(options) {
    try {
      const withTags = v.options(options, 'options').tags !== false
      return this.#run(withTags ? TOTALS : CHECK, 0).then((d) => {
        const t = this.#totals(d)
        if (!withTags) return t
        t.daily.byTag = {}
        t.monthly.byTag = {}
        const [day, month] = d.tags
        byTag(day, t.daily.byTag)
        byTag(month, t.monthly.byTag)
        return t
      })
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  /**
   * Spend per UTC day for the last `days` days (default 7, at most 400; kept `historyDays`
   * after each day) and per UTC hour for the last `hours` hours (default 24, at most 48),
   * oldest first and ending with the current one, in USD, with the spend per model and (days
   * only) per tag. Days and hours with nothing spent are listed with 0.
   */
  history(options) {
    try {
      const o = v.options(options, 'options')
      v.knownKeys(o, ['days', 'hours'], 'options')
      const days = o.days === undefined ? 7 : v.integer(o.days, 'options.days', 0, MAX_HISTORY_DAYS)
      const hours = o.hours === undefined ? 24 : v.integer(o.hours, 'options.hours', 0, MAX_HISTORY_HOURS)
      const now = this.#clock ? this.#clock() : Date.now()
      const shape = (h) => ({ days: h.days.map((p) => point(p, 'date')), hours: h.hours.map((p) => point(p, 'hour')) })
      if (this.#memory) return Promise.resolve(shape(JSON.parse(native.costTrackerHistory(this.#core, days, hours, now))))
      const empty = () => shape(emptyHistory(days, hours, now))
      return this.#fallback.run(
        () => native.costTrackerHistoryAsync(this.#core, days, hours, now).then((h) => shape(JSON.parse(h)), rethrow),
        empty,
        empty,
        null,
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  #hold(hold) {
    if (hold === null || typeof hold !== 'object' || typeof hold.id !== 'string' || !hold.id.includes('#')) {
      throw invalidArg(`hold must be a hold returned by reserve(), got ${v.describe(hold)}`)
    }
    return hold
  }

  /** In process, on the calling thread: the decision of `code` at `now`. */
  #local(code, nano, holdId, tags, model, now) {
    const out = this.#out
    if (code === TOTALS) {
      const text = native.costTrackerTags(this.#core, now, out)
      const d = decode(out)
      d.tags = JSON.parse(text)
      return d
    }
    native.costTrackerRun(this.#core, code, nano, holdId, tags, model, now, out)
    return decode(out)
  }

  /** On Redis (one script): resolves to the decision of `code` at `now`. */
  #remote(code, nano, holdId, tags, model, now) {
    if (code === TOTALS) {
      return native.costTrackerTagsAsync(this.#core, now).then((r) => {
        const d = decode(r.reply)
        d.tags = JSON.parse(r.tags)
        return d
      })
    }
    return native.costTrackerRunAsync(this.#core, code, nano, holdId, tags, model, now).then(decode)
  }

  #run(code, nano, holdId, tags, model) {
    const now = this.#clock ? this.#clock() : Date.now()
    const after = (d) => {
      this.#stats.decisions++
      if (!d.allowed && code === RESERVE) bump(this.#stats.refused, 'budget')
      this.#alert(d)
      return d
    }
    if (this.#memory) return Promise.resolve(after(this.#local(code, nano, holdId, tags, model, now)))
    const counts = code === RECORD || code === SETTLE || code === RELEASE
    return this.#fallback.run(
      () => this.#remote(code, nano, holdId, tags, model, now).then((d) => (this.#seeding && (this.#seen = [d, now]), after(d)), rethrow),
      () => after(this.#open(code, nano, now)),
      (l) => (this.#seed(l), this.#viaLocal(l, code, nano, holdId, tags, model).then(after)),
      counts ? { code, nano, holdId, tags, model, now } : null,
    )
  }

  // 'local' starts from what this process last saw: the twin is given the spend and holds Redis
  // last reported that it lacks — today's at that time, and the rest of the month's on its first
  // day (so they count in the month, not today) — once per outage. Nothing carries into a new
  // month; a new day keeps only the month's.
  #seed(twin) {
    if (this.#seen === null) return
    const [d, at] = this.#seen
    this.#seen = null
    const now = this.#clock ? this.#clock() : Date.now()
    const iso = new Date(now).toISOString()
    if (iso.slice(0, 7) !== d.month) return
    const t = twin.#local(CHECK, 0, undefined, undefined, undefined, at)
    const first = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1)
    const today = iso.slice(0, 10) === d.day
    const before = d.monthSpent - (today ? d.daySpent : 0) - (t.monthSpent - t.daySpent)
    if (before > 0 && iso.slice(8, 10) !== '01') twin.#local(RECORD, before, undefined, undefined, undefined, first)
    if (!today) return
    if (d.daySpent > t.daySpent) twin.#local(RECORD, d.daySpent - t.daySpent, undefined, undefined, undefined, at)
    if (d.dayReserved > t.dayReserved) twin.#local(RESERVE, d.dayReserved - t.dayReserved, undefined, undefined, undefined, at)
  }

  // Holds made in-process carry a 'local:' id, which never matches a hold in Redis.
  #viaLocal(l, code, nano, holdId, tags, model) {
    const id = holdId !== undefined && holdId.startsWith('local:') ? holdId.slice(6) : holdId
    return l.#run(code, nano, id, tags, model).then((d) => {
      if (d.holdId) d.holdId = `local:${d.holdId}`
      return d
    })
  }

  /** 'fail-open': an answer as if nothing were spent. */
  #open(code, nano, now) {
    const iso = new Date(now).toISOString()
    const day = iso.slice(0, 10)
    const d = new Date(now)
    const hold = code === RESERVE
    return {
      allowed: true,
      day,
      dayEndsAt: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1),
      daySpent: 0,
      dayReserved: 0,
      month: iso.slice(0, 7),
      monthEndsAt: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
      monthSpent: 0,
      monthReserved: 0,
      holdId: hold ? `local:${day}#open-${++this.#openHolds}` : undefined,
      holdExpiresAt: hold ? now + this.#holdMs : undefined,
      alertPeriods: [],
      alertThresholds: [],
      tags: [[], []],
    }
  }

  #totals(d) {
    const period = (label, endsAt, spentNano, reservedNano, budget) => {
      const spent = toUsd(spentNano)
      const reserved = toUsd(reservedNano)
      return {
        period: label,
        spent,
        reserved,
        budget,
        remaining: budget === null ? null : Math.max(0, toUsd(toNano(budget) - spentNano - reservedNano)),
        resetsAt: endsAt,
      }
    }
    const t = {
      daily: period(d.day, d.dayEndsAt, d.daySpent, d.dayReserved, this.#dailyBudget),
      monthly: period(d.month, d.monthEndsAt, d.monthSpent, d.monthReserved, this.#monthlyBudget),
    }
    if (d.fallback !== undefined) {
      t.fallback = d.fallback
      t.error = d.error
    }
    return t
  }

  /** Calls `onAlert` once for each threshold this call crossed (the store remembers it). */
  #alert(d) {
    for (let i = 0; i < d.alertPeriods.length; i++) {
      const daily = d.alertPeriods[i] === 'daily'
      const threshold = d.alertThresholds[i]
      const spent = toUsd(daily ? d.daySpent : d.monthSpent)
      const budget = daily ? this.#dailyBudget : this.#monthlyBudget
      const alert = { period: daily ? 'daily' : 'monthly', label: daily ? d.day : d.month, threshold, spent, budget }
      const message = `${daily ? 'Daily' : 'Monthly'} spend at $${spent.toFixed(2)} of $${budget.toFixed(2)} budget`
      try {
        this.#onAlert(message, alert)
      } catch (e) {
        // The spend is already counted: a failing callback must not turn that into a rejection.
        process.emitWarning(`CostTracker onAlert threw: ${e && e.message}`, { code: 'TOLLGATE_ALERT_FAILED' })
      }
    }
  }
}

module.exports = { CostTracker }
