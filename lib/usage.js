'use strict'
// The one reader of token usage. Every class that settles tokens or dollars reads what it is
// given through here: a number, tollgate's Usage, or a provider's response, usage object or
// stream event. One definition of input tokens holds everywhere: `inputTokens` counts every
// input token, cached reads and cache writes included; `outputTokens` every output token,
// reasoning and thoughts included. A value that carries no usage is an error
// (ERR_TOLLGATE_NO_USAGE), never a silent zero or estimate.

const { invalidArg, outOfRange, withCode, codes } = require('./errors')
const v = require('./validate')

/** Largest token count accepted anywhere (integers stay exact below 2^53). */
const MAX_TOKENS = Number.MAX_SAFE_INTEGER

function noUsage(message) {
  return withCode(new TypeError(message), codes.NO_USAGE)
}

/** A provider's token field: absent or null is 0; anything else must be an integer ≥ 0. */
function field(x, name) {
  if (x === undefined || x === null) return 0
  if (typeof x !== 'number') throw invalidArg(`${name} must be a number of tokens, got ${v.describe(x)}`)
  if (!Number.isInteger(x) || x < 0 || x > MAX_TOKENS) throw outOfRange(`${name} must be an integer number of tokens ≥ 0, got ${x}`)
  return x
}

function shape(input, cached, write, output, reasoning) {
  if (cached + write > input) {
    throw outOfRange(`cached input (${cached}) plus cache writes (${write}) exceed the input tokens (${input}): input tokens count them all`)
  }
  return { inputTokens: input, cachedInputTokens: cached, cacheWriteTokens: write, outputTokens: output, reasoningTokens: reasoning }
}

/** Whether `o` has key `a` or `b` (no array or closure per call: usage is read per settle). */
const has = (o, a, b) => a in o || (b !== undefined && b in o)

/** The names of OpenAI's usage fields in each API (the error messages' names made once). */
const CHAT_NAMES = namesOf('prompt_tokens', 'prompt_tokens_details', 'completion_tokens', 'completion_tokens_details')
const RESPONSES_NAMES = namesOf('input_tokens', 'input_tokens_details', 'output_tokens', 'output_tokens_details')
function namesOf(input, inputDetails, output, outputDetails) {
  return { input, inputDetails, output, outputDetails, cached: `${inputDetails}.cached_tokens`, reasoning: `${outputDetails}.reasoning_tokens` }
}

/** OpenAI's usage, in either API's names: cached input and reasoning come in the details. */
function openaiUsage(u, n) {
  const i = field(u[n.input], n.input)
  const d = u[n.inputDetails]
  const o = field(u[n.output], n.output)
  const od = u[n.outputDetails]
  return shape(i, field(d && d.cached_tokens, n.cached), 0, o, field(od && od.reasoning_tokens, n.reasoning))
}

/** Anthropic's usage: `input_tokens` excludes cache reads and writes, which are added. */
function anthropicUsage(u) {
  const read = field(u.cache_read_input_tokens, 'cache_read_input_tokens')
  const write = field(u.cache_creation_input_tokens, 'cache_creation_input_tokens')
  return shape(field(u.input_tokens, 'input_tokens') + read + write, read, write, field(u.output_tokens, 'output_tokens'), 0)
}

/** A provider's usage object (the `usage` of a response), or null when `u` is none. */
function fromUsageObject(u, anthropicHint) {
  if (u === null || typeof u !== 'object') return null
  // tollgate's own shape.
  if (has(u, 'inputTokens', 'outputTokens')) {
    return shape(
      field(u.inputTokens, 'inputTokens'),
      field(u.cachedInputTokens, 'cachedInputTokens'),
      field(u.cacheWriteTokens, 'cacheWriteTokens'),
      field(u.outputTokens, 'outputTokens'),
      field(u.reasoningTokens, 'reasoningTokens'),
    )
  }
  if (has(u, 'cache_read_input_tokens', 'cache_creation_input_tokens')) return anthropicUsage(u)
  // OpenAI Responses API: input_tokens (cached included), output_tokens (reasoning included).
  if (has(u, 'input_tokens', 'output_tokens')) {
    return anthropicHint && !has(u, 'input_tokens_details') ? anthropicUsage(u) : openaiUsage(u, RESPONSES_NAMES)
  }
  // OpenAI Chat Completions (and its last stream chunk with stream_options.include_usage).
  if (has(u, 'prompt_tokens', 'completion_tokens')) {
    return openaiUsage(u, CHAT_NAMES)
  }
  // Gemini's usageMetadata: promptTokenCount includes cached content; thoughts are output.
  if (has(u, 'promptTokenCount', 'candidatesTokenCount')) {
    const thoughts = field(u.thoughtsTokenCount, 'thoughtsTokenCount')
    return shape(field(u.promptTokenCount, 'promptTokenCount'), field(u.cachedContentTokenCount, 'cachedContentTokenCount'), 0, field(u.candidatesTokenCount, 'candidatesTokenCount') + thoughts, thoughts)
  }
  // tekimax's ChatResult usage: { promptTokens, completionTokens }.
  if (has(u, 'promptTokens', 'completionTokens')) {
    return shape(field(u.promptTokens, 'promptTokens'), 0, 0, field(u.completionTokens, 'completionTokens'), 0)
  }
  return null
}

/**
 * tollgate's Usage from any provider's response, stream event or usage object, or from a
 * Usage; null when `x` carries none. Per kind:
 * - OpenAI chat completion, or its last stream chunk (with `stream_options.include_usage`;
 *   the other chunks have `usage: null` → null);
 * - OpenAI Responses API response, or its `response.completed` / `response.incomplete` /
 *   `response.failed` stream event (other events → null);
 * - Anthropic message; its `message_start` event (input, and output so far), its
 *   `message_delta` event (running totals as of that delta — never add it to message_start's:
 *   use streamUsage());
 * - Gemini response or stream chunk (`usageMetadata`, running totals);
 * - a bare usage object of any of them, tekimax's ChatResult, tollgate's Usage.
 */
function usageFrom(x) {
  if (x === null || typeof x !== 'object') return null
  if (x instanceof StreamUsage) return x.complete ? x.usage : null
  if (x.usageMetadata && typeof x.usageMetadata === 'object') return fromUsageObject(x.usageMetadata, false)
  const type = typeof x.type === 'string' ? x.type : ''
  const anthropic = type === 'message' || type.startsWith('message_')
  // Responses API stream events carry the response.
  if (type.startsWith('response.') && x.response && typeof x.response === 'object') return fromUsageObject(x.response.usage, false)
  if (x.usage !== undefined) return fromUsageObject(x.usage, anthropic)
  if (x.message && typeof x.message === 'object' && x.message.usage !== undefined) return fromUsageObject(x.message.usage, true)
  return fromUsageObject(x, false)
}

/** Why `x` carries no usage, for the error message. */
function why(x) {
  if (x === undefined || x === null) return `got ${x}`
  if (typeof x !== 'object') return `got ${v.describe(x)}`
  if (x.object === 'chat.completion.chunk') return 'got an OpenAI stream chunk without usage (request stream_options: { include_usage: true } and read the last chunk, or feed every chunk to streamUsage())'
  if (typeof x.type === 'string' && x.type.startsWith('response.')) return `got a Responses API '${x.type}' event (usage comes with response.completed; streamUsage() collects it)`
  if (typeof x.type === 'string' && x.type.startsWith('content_block')) return `got an Anthropic '${x.type}' event (usage comes with message_start and message_delta; streamUsage() collects it)`
  if (x instanceof StreamUsage) return 'got a streamUsage() that has seen no usage yet'
  if (x.usage && typeof x.usage === 'object' && has(x.usage, 'totalTokens', 'total_tokens')) return 'got a usage with a total only (input and output are needed)'
  return 'got an object with none of the usage fields tollgate reads'
}

/** tollgate's Usage from `x`: ERR_TOLLGATE_INVALID_ARG when `x` is not an object, ERR_TOLLGATE_NO_USAGE when it carries no usage. */
function requireUsage(x, name) {
  if (x === null || typeof x !== 'object') {
    throw invalidArg(`${name} must be a number of tokens, tollgate's Usage or a provider response, ${why(x)} (on an OpenAI response, usage.total_tokens; or pass the response itself)`)
  }
  const u = usageFrom(x)
  if (u === null) {
    throw noUsage(`${name} must be tollgate's Usage or a provider response carrying usage (OpenAI chat / Responses, Anthropic, Gemini): ${why(x)}`)
  }
  return u
}

/**
 * Tokens a call used: a number (an integer ≥ 0) as given, else `inputTokens + outputTokens`
 * of whatever {@link usageFrom} reads (cached input included). ERR_TOLLGATE_NO_USAGE when an
 * object carries no usage; ERR_TOLLGATE_INVALID_ARG for anything else (undefined included:
 * `response.usage.totalTokens` on an OpenAI response).
 * TokenBudget.settle and Quota.commit read their tokens through it.
 */
function totalTokens(x, name) {
  if (typeof x === 'number') return v.integer(x, name, 0, MAX_TOKENS)
  const u = requireUsage(x, name)
  return u.inputTokens + u.outputTokens
}

// ---- streams -----------------------------------------------------------------------------

const FIELDS = ['inputTokens', 'cachedInputTokens', 'cacheWriteTokens', 'outputTokens', 'reasoningTokens']

/** Which provider an event is from, and whether it ends the stream's usage. */
function kindOf(e) {
  const type = typeof e.type === 'string' ? e.type : ''
  if (e.object === 'chat.completion.chunk') return ['openai', e.usage !== undefined && e.usage !== null]
  if (type.startsWith('response.')) return ['openai-responses', type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed']
  if (type.startsWith('message') || type.startsWith('content_block') || type === 'ping' || type === 'error') return ['anthropic', type === 'message_delta' || type === 'message_stop']
  if (e.usageMetadata !== undefined || e.candidates !== undefined) {
    const done = Array.isArray(e.candidates) && e.candidates.some((c) => c && c.finishReason)
    return ['gemini', done]
  }
  return [null, false]
}

/**
 * Collects the usage of one streamed call from its events, whatever their order and however
 * often one is repeated: counts in stream events are running totals, so each field keeps the
 * largest value seen (an Anthropic `message_start` and `message_delta` are not added up).
 */
class StreamUsage {
  #usage = null
  #provider = null
  #complete = false

  /** Reads one stream event (any kind; those without usage are fine). Returns `this`. */
  add(event) {
    if (event === null || typeof event !== 'object') throw invalidArg(`a stream event must be an object, got ${v.describe(event)}`)
    const [provider, ends] = kindOf(event)
    if (provider === null) throw invalidArg('not an OpenAI, Anthropic or Gemini stream event')
    if (this.#provider !== null && provider !== this.#provider) {
      throw invalidArg(`a ${provider} event in a ${this.#provider} stream: use one streamUsage() per call`)
    }
    this.#provider = provider
    const u = usageFrom(event)
    if (u !== null) {
      if (this.#usage === null) this.#usage = u
      else for (const k of FIELDS) this.#usage[k] = Math.max(this.#usage[k], u[k])
    }
    if (ends && u !== null) this.#complete = true
    if (event.type === 'message_stop' && this.#usage !== null) this.#complete = true
    return this
  }

  /** Passes `stream`'s events through, reading each. */
  async *track(stream) {
    for await (const event of stream) {
      this.add(event)
      yield event
    }
  }

  /** The usage seen so far (a copy), or null. */
  get usage() {
    return this.#usage === null ? null : { ...this.#usage }
  }

  /** True once the event that carries the final usage was seen. */
  get complete() {
    return this.#complete
  }

  /** The final usage; ERR_TOLLGATE_NO_USAGE until the stream's final usage was seen. */
  final() {
    if (!this.#complete) {
      const hint =
        this.#provider === 'openai'
          ? ' (an OpenAI chat stream reports usage only with stream_options: { include_usage: true })'
          : this.#provider === 'anthropic'
            ? ' (no message_delta yet)'
            : this.#provider === 'openai-responses'
              ? ' (no response.completed yet)'
              : ''
      throw noUsage(`the stream's final usage has not been seen${hint}`)
    }
    return this.usage
  }
}

/** A new {@link StreamUsage}: feed it every event of one streamed call. */
function streamUsage() {
  return new StreamUsage()
}

module.exports = { usageFrom, requireUsage, totalTokens, streamUsage, StreamUsage, MAX_TOKENS }
