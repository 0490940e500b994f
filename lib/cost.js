'use strict'
// Prices, costs and usage normalisation (engine/cost.rs holds the catalog and the math).

const native = require('./native')
const { invalidArg, outOfRange, codes } = require('./errors')
const { countTokens } = require('./tokens')
const v = require('./validate')

/** The price of `model` (USD per 1M tokens), or null when it is not in the catalog. */
function priceOf(model) {
  v.id(model, 'model')
  const p = native.priceOfModel(model)
  return p === null ? null : { input: p[0], cachedInput: p[1], cacheWrite: p[2], output: p[3], batchDiscount: p[4] }
}

function usd(x, name) {
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number (USD per 1M tokens), got ${v.describe(x)}`)
  // Above 2^53 a count is no longer exact, and its cost overflows what a ledger can hold.
  if (!Number.isFinite(x) || x < 0 || x > Number.MAX_SAFE_INTEGER) {
    throw outOfRange(`${name} must be a finite number from 0 to ${Number.MAX_SAFE_INTEGER}, got ${x}`)
  }
  return x
}

/**
 * Adds or replaces the price of `model` (and of the dated or versioned ids that extend it),
 * process-wide, ahead of the built-in catalog. `cachedInput` and `cacheWrite` default to
 * `input`; `batchDiscount` (the share paid through a batch API) to 0.5.
 */
function definePrice(model, price) {
  v.id(model, 'model')
  const p = v.options(price, 'price')
  const input = usd(p.input, 'price.input')
  const output = usd(p.output, 'price.output')
  const cachedInput = p.cachedInput === undefined ? input : usd(p.cachedInput, 'price.cachedInput')
  const cacheWrite = p.cacheWrite === undefined ? input : usd(p.cacheWrite, 'price.cacheWrite')
  const batch = p.batchDiscount === undefined ? 0.5 : usd(p.batchDiscount, 'price.batchDiscount')
  if (batch > 1) throw outOfRange(`price.batchDiscount must be at most 1, got ${batch}`)
  native.defineModelPrice(model, [input, cachedInput, cacheWrite, output, batch])
}

function priceFor(model) {
  v.id(model, 'model')
  const p = native.priceOfModel(model)
  if (p === null) {
    throw outOfRange(`no price for model ${JSON.stringify(model)}: add one with definePrice()`, codes.UNKNOWN_MODEL)
  }
  return p
}

function count(x, name) {
  if (x === undefined || x === null) return 0
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number of tokens, got ${v.describe(x)}`)
  // Above 2^53 a count is no longer exact, and its cost overflows what a ledger can hold.
  if (!Number.isFinite(x) || x < 0 || x > Number.MAX_SAFE_INTEGER) {
    throw outOfRange(`${name} must be a finite number from 0 to ${Number.MAX_SAFE_INTEGER}, got ${x}`)
  }
  return x
}

/**
 * USD a call cost: `usage` in tollgate's shape (see `usageFrom`). Cached input is billed at the
 * cached rate and cache writes at the write rate, never also as plain input. `batch` applies
 * the provider's batch discount.
 */
function costOf(usage, model, options) {
  if (usage === null || typeof usage !== 'object') throw invalidArg(`usage must be an object, got ${v.describe(usage)}`)
  const o = v.options(options, 'options')
  const input = count(usage.inputTokens, 'usage.inputTokens')
  const cached = count(usage.cachedInputTokens, 'usage.cachedInputTokens')
  const write = count(usage.cacheWriteTokens, 'usage.cacheWriteTokens')
  if (cached + write > input) {
    throw outOfRange('usage.cachedInputTokens + usage.cacheWriteTokens must not exceed usage.inputTokens (input counts all of them)')
  }
  const output = count(usage.outputTokens, 'usage.outputTokens')
  return native.costOfUsage([input, cached, write, output], priceFor(model), o.batch === true)
}

/**
 * The seed's estimate before a call: `input` as text (counted with the model's encoding, or
 * o200k_base for non-OpenAI models) or as a token count.
 */
function estimateCost(input, estimatedOutputTokens, model) {
  const price = priceFor(model)
  const inputTokens = typeof input === 'number' ? count(input, 'input') : countTokens(input, model, { fallback: 'o200k_base' })
  const output = count(estimatedOutputTokens, 'estimatedOutputTokens')
  return {
    inputTokens,
    estimatedOutputTokens: output,
    estimatedCost: native.costOfUsage([inputTokens, 0, 0, output], price, false),
    model,
  }
}

const num = (x) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0)

/** OpenAI's usage, in either API's names: cached input and reasoning come in the details. */
function openaiUsage(input, inputDetails, output, outputDetails) {
  return {
    inputTokens: num(input),
    cachedInputTokens: num(inputDetails && inputDetails.cached_tokens),
    cacheWriteTokens: 0,
    outputTokens: num(output),
    reasoningTokens: num(outputDetails && outputDetails.reasoning_tokens),
  }
}

/**
 * One usage shape from any provider's response (or its last streaming chunk):
 * `{ inputTokens, cachedInputTokens, cacheWriteTokens, outputTokens, reasoningTokens }`.
 * `inputTokens` counts every input token (cached and cache-write ones included);
 * `outputTokens` counts every output token (reasoning included). Null when there is no usage.
 */
function usageFrom(response) {
  if (response === null || typeof response !== 'object') return null
  // Gemini: usageMetadata (promptTokenCount includes cached content; thoughts are billed as output).
  const g = response.usageMetadata
  if (g && typeof g === 'object') {
    const thoughts = num(g.thoughtsTokenCount)
    return {
      inputTokens: num(g.promptTokenCount),
      cachedInputTokens: num(g.cachedContentTokenCount),
      cacheWriteTokens: 0,
      outputTokens: num(g.candidatesTokenCount) + thoughts,
      reasoningTokens: thoughts,
    }
  }
  // Anthropic streaming: message_start carries message.usage; message_delta carries usage.
  const u = response.usage ?? (response.message && response.message.usage)
  if (!u || typeof u !== 'object') return null
  // Anthropic messages: input_tokens excludes cache reads and writes.
  if ('cache_read_input_tokens' in u || 'cache_creation_input_tokens' in u || (response.type && String(response.type).startsWith('message'))) {
    const read = num(u.cache_read_input_tokens)
    const write = num(u.cache_creation_input_tokens)
    return { inputTokens: num(u.input_tokens) + read + write, cachedInputTokens: read, cacheWriteTokens: write, outputTokens: num(u.output_tokens), reasoningTokens: 0 }
  }
  // OpenAI Responses API: input_tokens (cached included), output_tokens (reasoning included).
  if ('input_tokens' in u || 'output_tokens' in u) {
    return openaiUsage(u.input_tokens, u.input_tokens_details, u.output_tokens, u.output_tokens_details)
  }
  // OpenAI Chat Completions (and its final streaming chunk with stream_options.include_usage).
  if ('prompt_tokens' in u || 'completion_tokens' in u) {
    return openaiUsage(u.prompt_tokens, u.prompt_tokens_details, u.completion_tokens, u.completion_tokens_details)
  }
  // tekimax's ChatResult: { promptTokens, completionTokens }.
  if ('promptTokens' in u || 'completionTokens' in u) {
    return { inputTokens: num(u.promptTokens), cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: num(u.completionTokens), reasoningTokens: 0 }
  }
  return null
}

module.exports = { priceOf, definePrice, costOf, estimateCost, usageFrom }
