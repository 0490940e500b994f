'use strict'
// Model tiering: the cost patterns article's selectModel over configurable tiers, with its budget-aware
// downgrade driven by a CostTracker.

const { invalidArg, outOfRange, fromNative } = require('./errors')
const v = require('./validate')

/** The cost patterns article's tiers, cheapest first. */
const MODEL_TIERS = Object.freeze({
  simple: Object.freeze({ model: 'gpt-4.1-nano', maxTokens: 150, description: 'Classification, extraction, yes/no questions' }),
  standard: Object.freeze({ model: 'gpt-4o-mini', maxTokens: 1000, description: 'Summarization, simple generation, translation' }),
  complex: Object.freeze({ model: 'gpt-4o', maxTokens: 4000, description: 'Analysis, creative writing, code generation, reasoning' }),
})

function fraction(x, name) {
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number, got ${v.describe(x)}`)
  if (!Number.isFinite(x) || x < 0) throw outOfRange(`${name} must be a finite fraction ≥ 0, got ${x}`)
  return x
}

class ModelTiers {
  #tiers
  #names
  #defaultTier
  #shortInputTokens
  #tracker
  #downgrades

  /**
   * @param options `tiers` (cheapest first; default the cost patterns article's simple/standard/complex),
   *   `defaultTier` for unknown tasks, `shortInputTokens` (below it, any task but the top tier
   *   goes to the cheapest; 0 turns it off), `tracker` (a CostTracker) and `downgrades`
   *   (`[{above, maxTier}]`: once spend passes `above` of a budget, no tier above `maxTier`).
   */
  constructor(options) {
    const o = v.options(options, 'options')
    const tiers = o.tiers === undefined ? MODEL_TIERS : v.options(o.tiers, 'options.tiers')
    this.#names = Object.keys(tiers)
    if (this.#names.length === 0) throw invalidArg('options.tiers must name at least one tier')
    this.#tiers = new Map()
    for (const name of this.#names) {
      const t = v.options(tiers[name], `options.tiers.${name}`)
      v.id(t.model, `options.tiers.${name}.model`)
      this.#tiers.set(name, t)
    }
    const known = (name, what) => {
      v.id(name, what)
      if (!this.#tiers.has(name)) throw outOfRange(`${what} must be one of ${this.#names.join(', ')}, got ${JSON.stringify(name)}`)
      return name
    }
    const n = this.#names.length
    this.#defaultTier = o.defaultTier === undefined ? (this.#tiers.has('standard') ? 'standard' : this.#names[0]) : known(o.defaultTier, 'options.defaultTier')
    this.#shortInputTokens = o.shortInputTokens === undefined ? 50 : v.integer(o.shortInputTokens, 'options.shortInputTokens', 0, Number.MAX_SAFE_INTEGER)
    if (o.tracker !== undefined && (o.tracker === null || typeof o.tracker.totals !== 'function')) {
      throw invalidArg(`options.tracker must be a CostTracker, got ${v.describe(o.tracker)}`)
    }
    this.#tracker = o.tracker
    const downgrades =
      o.downgrades !== undefined
        ? o.downgrades
        : n < 2
          ? []
          : [
              { above: 0.9, maxTier: this.#names[n - 2] },
              { above: 0.95, maxTier: this.#names[0] },
            ]
    if (!Array.isArray(downgrades)) throw invalidArg(`options.downgrades must be an array, got ${v.describe(downgrades)}`)
    this.#downgrades = downgrades
      .map((d, i) => {
        const x = v.options(d, `options.downgrades[${i}]`)
        return { above: fraction(x.above, `options.downgrades[${i}].above`), maxTier: known(x.maxTier, `options.downgrades[${i}].maxTier`) }
      })
      .sort((a, b) => a.above - b.above)
  }

  /** Tier names, cheapest first. */
  get tiers() {
    return [...this.#names]
  }

  /**
   * The tier for `task` (a tier name; unknown tasks get `defaultTier`). Resolves to the tier's
   * settings plus `tier`, `requestedTier`, `reason` ('requested' | 'short-input' | 'budget') and
   * `budgetUsed` (the larger of daily and monthly `(spent + reserved) / budget`, or null).
   */
  selectModel(task, options) {
    try {
      v.id(task, 'task')
      const o = v.options(options, 'options')
      const inputTokens = o.inputTokens === undefined ? undefined : v.integer(o.inputTokens, 'options.inputTokens', 0, Number.MAX_SAFE_INTEGER)
      const known = this.#tiers.has(task)
      const requested = known ? task : this.#defaultTier
      let tier = requested
      // An unknown task gets the default tier, and says so: never 'requested'.
      let reason = known ? 'requested' : 'unknown-task'
      const top = this.#names[this.#names.length - 1]
      if (inputTokens !== undefined && inputTokens < this.#shortInputTokens && requested !== top && requested !== this.#names[0]) {
        tier = this.#names[0]
        reason = 'short-input'
      }
      const done = (used) => {
        if (used !== null) {
          for (const d of this.#downgrades) {
            if (used > d.above && this.#names.indexOf(tier) > this.#names.indexOf(d.maxTier)) {
              tier = d.maxTier
              reason = 'budget'
            }
          }
        }
        return { ...this.#tiers.get(tier), tier, requestedTier: requested, reason, budgetUsed: used }
      }
      if (this.#tracker === undefined) return Promise.resolve(done(null))
      return this.#tracker.totals({ tags: false }).then((t) => done(used(t)))
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }
}

function used(t) {
  const parts = [t.daily, t.monthly].filter((p) => p.budget !== null && p.budget > 0).map((p) => (p.spent + p.reserved) / p.budget)
  return parts.length === 0 ? null : Math.max(...parts)
}

module.exports = { ModelTiers, MODEL_TIERS }
