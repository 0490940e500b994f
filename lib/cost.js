'use strict'
// Prices and costs (engine/cost.rs holds the catalog, the id matching and the math). Money is
// integer nano-dollars inside — prices as nano-dollars per 1M tokens, a cost rounded once to
// the nano-dollar — and decimal USD outside: `nano / 1e9` is the double nearest the exact
// decimal, so a cost prints as `0.0000033`, never `0.0000032999999999999997`.

const native = require('./native')
const { invalidArg, outOfRange, codes } = require('./errors')
const { countTokens } = require('./tokens')
const { usageFrom, requireUsage, MAX_TOKENS } = require('./usage')
const v = require('./validate')

const NANO = 1e9
const PPM = 1e6
/** USD (a decimal) → integer nano-dollars. */
const toNano = (usd) => Math.round(usd * NANO)
/** Integer nano-dollars → USD: the double nearest the exact decimal. */
const toUsd = (nano) => nano / NANO

/** The price of `model` (USD per 1M tokens), or null when neither definePrice nor the catalog has it. */
function priceOf(model) {
  v.id(model, 'model')
  const p = native.priceOfModel(model)
  return p === null ? null : { input: toUsd(p[0]), cachedInput: toUsd(p[1]), cacheWrite: toUsd(p[2]), output: toUsd(p[3]), batchDiscount: p[4] / PPM }
}

/** Largest price accepted: $1,000,000 per 1M tokens. */
const MAX_PRICE = 1e6

function usd(x, name) {
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number (USD per 1M tokens), got ${v.describe(x)}`)
  if (!Number.isFinite(x) || x < 0 || x > MAX_PRICE) throw outOfRange(`${name} must be a number from 0 to ${MAX_PRICE} (USD per 1M tokens), got ${x}`)
  return x
}

/**
 * Adds or replaces the price of `model` (and of its dated or versioned ids), process-wide,
 * ahead of the built-in catalog. `cachedInput` and `cacheWrite` default to `input`;
 * `batchDiscount` (the share paid through a batch API) to 0.5. Prices are kept to the
 * nano-dollar per 1M tokens.
 */
function definePrice(model, price) {
  v.id(model, 'model')
  const p = v.knownKeys(v.options(price, 'price'), ['input', 'output', 'cachedInput', 'cacheWrite', 'batchDiscount'], 'price')
  const input = usd(p.input, 'price.input')
  const output = usd(p.output, 'price.output')
  const cachedInput = p.cachedInput === undefined ? input : usd(p.cachedInput, 'price.cachedInput')
  const cacheWrite = p.cacheWrite === undefined ? input : usd(p.cacheWrite, 'price.cacheWrite')
  const batch = p.batchDiscount === undefined ? 0.5 : usd(p.batchDiscount, 'price.batchDiscount')
  if (batch > 1) throw outOfRange(`price.batchDiscount must be at most 1, got ${batch}`)
  native.defineModelPrice(model, [toNano(input), toNano(cachedInput), toNano(cacheWrite), toNano(output), Math.round(batch * PPM)])
  prices.clear()
}

/** An error for a model without a price, naming the known ids closest to it. */
function unknownModel(model) {
  const near = native.closestModels(model, 3)
  const e = outOfRange(
    `no price for model ${JSON.stringify(model)}; did you mean ${near.map((m) => JSON.stringify(m)).join(', ')}? ` +
      'A model is priced by its exact id or its provider-dated id (gpt-4o-2024-08-06 → gpt-4o); add others with definePrice()',
    codes.UNKNOWN_MODEL,
  )
  e.suggestions = near
  return e
}

/** model → its native price, for hot paths; emptied whenever a price is defined. */
const prices = new Map()

/** `priceFor(model)`, remembered until the next `definePrice` (at most 1,024 models). */
function cachedPrice(model) {
  let p = prices.get(model)
  if (p === undefined) {
    p = priceFor(model)
    if (prices.size >= 1024) prices.clear()
    prices.set(model, p)
  }
  return p
}

/**
 * Integer nano-dollars for `input` (cached included), `output` and optionally `cached` /
 * `write` tokens of `model`, all already validated: the hot path of the Guard.
 */
function costNanoParts(model, input, output, cached = 0, write = 0) {
  const p = cachedPrice(model)
  const exact = nanoExact(input, cached, write, output, p)
  const nano = exact >= 0 ? exact : native.costNanoParts(input, cached, write, output, p[0], p[1], p[2], p[3], p[4])
  if (nano > Number.MAX_SAFE_INTEGER) throw outOfRange(`the cost of this usage is over ${Number.MAX_SAFE_INTEGER} nano-dollars, more than any ledger here holds exactly`)
  return nano
}

/**
 * engine/cost.rs's `cost_nano` (not batch) in plain integer arithmetic, for the amounts it holds
 * exactly: Σ tokens × nano-dollars per 1M tokens, divided by 1M and rounded half up. -1 when a
 * term or the sum passes 2^53 (the native u128 arithmetic answers those). Saves the guard a
 * native call per decision.
 */
function nanoExact(input, cached, write, output, p) {
  const uncached = Math.max(0, input - (cached + write))
  const a = uncached * p[0]
  const b = cached * p[1]
  const c = write * p[2]
  const d = output * p[3]
  const sum = a + b + c + d + 500_000
  if (!(a <= MAX_EXACT && b <= MAX_EXACT && c <= MAX_EXACT && d <= MAX_EXACT && sum <= MAX_EXACT)) return -1
  // floor(sum / 1e6), exactly: the float quotient may round across an integer; the remainder
  // (an exact integer) puts it back.
  let q = Math.floor(sum / 1_000_000)
  const r = sum - q * 1_000_000
  if (r < 0) q -= 1
  else if (r >= 1_000_000) q += 1
  return q
}
const MAX_EXACT = Number.MAX_SAFE_INTEGER

/** The native price of `model` (nano-dollars per 1M tokens), or ERR_TOLLGATE_UNKNOWN_MODEL. */
function priceFor(model) {
  v.id(model, 'model')
  const p = native.priceOfModel(model)
  if (p === null) throw unknownModel(model)
  return p
}

function tokens(x, name) {
  if (x === undefined || x === null) return 0
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number of tokens, got ${v.describe(x)}`)
  if (!Number.isInteger(x) || x < 0 || x > MAX_TOKENS) throw outOfRange(`${name} must be an integer number of tokens ≥ 0, got ${x}`)
  return x
}

/** `[input, cached, write, output]` of whatever usageFrom reads, checked. */
function usageVector(usage) {
  const u = requireUsage(usage, 'usage')
  return [u.inputTokens, u.cachedInputTokens, u.cacheWriteTokens, u.outputTokens]
}

/** Integer nano-dollars a call cost at a native price (see costOf). */
function costNanoAt(usage, price, batch) {
  const nano = native.costNanoOfUsage(usageVector(usage), price, batch === true)
  // The engine saturates; a cost past 2^53 nano-dollars (~$9M) is no exact amount: refused.
  if (nano > Number.MAX_SAFE_INTEGER) throw outOfRange(`the cost of this usage is over ${Number.MAX_SAFE_INTEGER} nano-dollars, more than any ledger here holds exactly`)
  return nano
}

/** Integer nano-dollars a call cost: `usage` as in costOf. */
function costNano(usage, model, options) {
  const o = v.options(options, 'options')
  return costNanoAt(usage, priceFor(model), o.batch)
}

/**
 * USD a call cost, rounded to the nano-dollar: `usage` in tollgate's shape (see `usageFrom`)
 * or a provider response. Cached input is billed at the cached rate and cache writes at the
 * write rate, never also as plain input. `batch` applies the provider's batch discount.
 */
function costOf(usage, model, options) {
  return toUsd(costNano(usage, model, options))
}

/**
 * The cost patterns article's estimate before a call: `input` as text (counted with the model's encoding, or
 * o200k_base for non-OpenAI models) or as a token count.
 */
function estimateCost(input, estimatedOutputTokens, model) {
  const price = priceFor(model)
  const inputTokens = typeof input === 'number' ? tokens(input, 'input') : countTokens(input, model, { fallback: 'o200k_base' })
  const output = tokens(estimatedOutputTokens, 'estimatedOutputTokens')
  return {
    inputTokens,
    estimatedOutputTokens: output,
    estimatedCost: toUsd(native.costNanoOfUsage([inputTokens, 0, 0, output], price, false)),
    model,
  }
}

/** Every model id of the built-in catalog. */
function catalogModels() {
  return native.catalogModels()
}

module.exports = { nanoExact, priceOf, definePrice, costOf, costNano, costNanoAt, costNanoParts, estimateCost, usageFrom, priceFor, unknownModel, catalogModels, toNano, toUsd }
