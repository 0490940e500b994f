'use strict'
// tollgate/ai-sdk: a language model middleware for the AI SDK's `wrapLanguageModel` that puts
// every call of any provider's model through a Guard — one decision before the call (estimated
// from the prompt and `maxOutputTokens`), one settlement after it with the AI SDK's usage, a
// cached answer when the guard's cache has one. It adds no limit of its own: the guard decides.
//
// It never loads `ai`: the middleware is a plain object of the AI SDK's middleware interface
// (`specificationVersion: 'v4'`, `transformParams`, `wrapGenerate`, `wrapStream`).

const { invalidArg } = require('../errors')
const { limitedError: limited } = require('../guard')
const { countMessageTokens, countTokens } = require('../tokens')
const v = require('../validate')
const { watchStream } = require('./watch')

/** The providerOptions namespace the per-call context is read from (and stripped before the call). */
const NAMESPACE = 'tollgate'
/** Marks a cache entry written by this middleware. */
const ENTRY = 'ai-sdk'
/** Call options that change the answer: part of the cache key. */
const KEY_PARAMS = ['maxOutputTokens', 'temperature', 'stopSequences', 'topP', 'topK', 'presencePenalty', 'frequencyPenalty', 'responseFormat', 'seed', 'tools', 'toolChoice', 'reasoning', 'providerOptions']

/** A count of the AI SDK's (a number or undefined), checked. */
function count(x, name) {
  if (x === undefined || x === null) return undefined
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw invalidArg(`${name} must be an integer number of tokens ≥ 0, got ${v.describe(x)}`)
  return x
}

const sum = (...xs) => (xs.every((x) => x === undefined) ? undefined : xs.reduce((a, x) => a + (x ?? 0), 0))

/**
 * tollgate's Usage from the AI SDK's usage: the model's (`inputTokens: { total, noCache,
 * cacheRead, cacheWrite }`, `outputTokens: { total, text, reasoning }`) or `generateText`'s
 * (`inputTokens`, `inputTokenDetails`, `outputTokens`, `outputTokenDetails`). Null when the
 * input or output count is missing (some providers report none).
 */
function usageFromAiSdk(u) {
  if (u === null || typeof u !== 'object') return null
  let input, noCache, read, write, output, text, reasoning
  if (u.inputTokens !== null && typeof u.inputTokens === 'object') {
    const i = u.inputTokens
    const o = u.outputTokens !== null && typeof u.outputTokens === 'object' ? u.outputTokens : {}
    input = count(i.total, 'inputTokens.total')
    noCache = count(i.noCache, 'inputTokens.noCache')
    read = count(i.cacheRead, 'inputTokens.cacheRead')
    write = count(i.cacheWrite, 'inputTokens.cacheWrite')
    output = count(o.total, 'outputTokens.total')
    text = count(o.text, 'outputTokens.text')
    reasoning = count(o.reasoning, 'outputTokens.reasoning')
  } else {
    const i = u.inputTokenDetails || {}
    const o = u.outputTokenDetails || {}
    input = count(u.inputTokens, 'inputTokens')
    noCache = count(i.noCacheTokens, 'inputTokenDetails.noCacheTokens')
    read = count(i.cacheReadTokens ?? u.cachedInputTokens, 'inputTokenDetails.cacheReadTokens')
    write = count(i.cacheWriteTokens, 'inputTokenDetails.cacheWriteTokens')
    output = count(u.outputTokens, 'outputTokens')
    text = count(o.textTokens, 'outputTokenDetails.textTokens')
    reasoning = count(o.reasoningTokens ?? u.reasoningTokens, 'outputTokenDetails.reasoningTokens')
  }
  // A total counts its parts; when a provider gives only the parts (or a total smaller than
  // them), the parts are the count.
  const parts = sum(noCache, read, write)
  if (parts !== undefined) input = Math.max(input ?? 0, parts)
  const outParts = sum(text, reasoning)
  if (outParts !== undefined && output === undefined) output = outParts
  if (input === undefined || output === undefined) return null
  return { inputTokens: input, cachedInputTokens: read ?? 0, cacheWriteTokens: write ?? 0, outputTokens: output, reasoningTokens: Math.min(reasoning ?? 0, output) }
}

/** The model's usage shape from tollgate's Usage (a cached answer reports the usage it had). */
function toModelUsage(u) {
  return {
    inputTokens: { total: u.inputTokens, noCache: u.inputTokens - u.cachedInputTokens - u.cacheWriteTokens, cacheRead: u.cachedInputTokens, cacheWrite: u.cacheWriteTokens },
    outputTokens: { total: u.outputTokens, text: u.outputTokens - u.reasoningTokens, reasoning: u.reasoningTokens },
  }
}

/** The prompt as chat messages of text, to count: text and reasoning as they are, tool calls and results as JSON. */
function promptText(prompt, tools) {
  const out = []
  if (Array.isArray(tools) && tools.length > 0) out.push({ role: 'system', content: JSON.stringify(tools) })
  for (const m of prompt) {
    if (m === null || typeof m !== 'object') continue
    if (typeof m.content === 'string') {
      out.push({ role: m.role, content: m.content })
      continue
    }
    let text = ''
    for (const p of Array.isArray(m.content) ? m.content : []) {
      if (p === null || typeof p !== 'object') continue
      if (typeof p.text === 'string') text += p.text
      else if (p.type === 'tool-call') text += `${p.toolName}${typeof p.input === 'string' ? p.input : JSON.stringify(p.input ?? null)}`
      else if (p.type === 'tool-result') text += JSON.stringify(p.output ?? null)
    }
    out.push({ role: m.role, content: text })
  }
  return out
}

/** Whether `x` is made of JSON values only (so it can be part of a cache key or entry). */
function plain(x, depth = 0) {
  if (depth > 64) return false
  if (x === null || x === undefined) return true
  const t = typeof x
  if (t === 'string' || t === 'boolean') return true
  if (t === 'number') return Number.isFinite(x)
  if (Array.isArray(x)) return x.every((y) => plain(y, depth + 1))
  if (t !== 'object') return false
  const proto = Object.getPrototypeOf(x)
  if (proto !== Object.prototype && proto !== null) return false
  return Object.values(x).every((y) => plain(y, depth + 1))
}

/** `providerOptions` without tollgate's namespace (undefined when nothing is left). */
function withoutOwn(providerOptions) {
  if (providerOptions === null || typeof providerOptions !== 'object' || !(NAMESPACE in providerOptions)) return providerOptions
  const { [NAMESPACE]: _, ...rest } = providerOptions
  return Object.keys(rest).length === 0 ? undefined : rest
}

/** Text of a content list or of the parts a stream delivered, for counting what was produced. */
const producedText = (content) => content.map((c) => (typeof c.text === 'string' ? c.text : c.type === 'tool-call' ? `${c.toolName}${c.input}` : '')).join('')

/**
 * Guards every call of a model wrapped with `wrapLanguageModel({ model, middleware })`.
 * Options: `context(call)` — the guard's ctx from `{ params, model }` (default: `{ model,
 * provider, ...providerOptions.tollgate }`); `model` — the model id the guard prices (default
 * the wrapped model's `modelId`, or a function of the model).
 */
function guardMiddleware(guard, options) {
  // A Guard, by its methods (a second copy of tollgate in node_modules makes Guards of another class).
  if (guard === null || typeof guard !== 'object' || typeof guard.acquire !== 'function') throw invalidArg(`guardMiddleware(guard): expected a Guard, got ${v.describe(guard)}`)
  const o = v.options(options, 'options')
  v.knownKeys(o, ['context', 'model', 'waitMs'], 'options')
  const context = o.context === undefined ? null : v.fn(o.context, 'options.context')
  const waitMs = o.waitMs === undefined ? 0 : v.integer(o.waitMs, 'options.waitMs', 0, 600_000)
  let modelOf
  if (o.model === undefined) modelOf = (m) => m.modelId
  else if (typeof o.model === 'string') {
    const id = v.id(o.model, 'options.model')
    modelOf = () => id
  } else modelOf = v.fn(o.model, 'options.model')
  const stats = { calls: 0, refused: 0, cached: 0, settled: 0, cancelled: 0, estimated: 0, settleErrors: 0 }
  /** Transformed params → the context read from the params as the caller gave them. */
  const contexts = new WeakMap()

  const contextOf = (params, model) => {
    if (context !== null) return context({ params, model })
    const own = params.providerOptions && params.providerOptions[NAMESPACE]
    return { model: model.modelId, provider: model.provider, ...(own !== null && typeof own === 'object' ? own : {}) }
  }

  /** The call as the guard sees it: its context, request and estimate. */
  const prepare = (params, model) => {
    const ctx = contexts.has(params) ? contexts.get(params) : contextOf(params, model)
    const modelId = v.id(modelOf(model), 'the model id')
    const prompt = Array.isArray(params.prompt) ? params.prompt : []
    const input = countMessageTokens(promptText(prompt, params.tools), modelId, { fallback: 'o200k_base' })
    const request = { model: modelId, tokens: input }
    if (params.maxOutputTokens !== undefined) request.maxTokens = params.maxOutputTokens
    // The prompt and the options that change the answer are the cache key, when JSON holds them.
    const keyParams = { provider: model.provider }
    for (const k of KEY_PARAMS) if (params[k] !== undefined) keyParams[k] = params[k]
    if (plain(prompt) && plain(keyParams)) {
      request.messages = prompt
      request.params = keyParams
    }
    // Waiting (options.waitMs), the call's abortSignal stops the wait.
    const wait = waitMs === 0 ? undefined : { wait: { maxMs: waitMs }, signal: params.abortSignal }
    return { ctx, request, input, modelId, wait }
  }

  const acquire = async (call) => {
    stats.calls++
    let d = await guard.acquire(call.ctx, call.request, call.wait)
    if (d.ok && d.cached !== null && !isEntry(d.cached)) {
      // Something else was cached under this key: decide again, without the cache.
      const { messages: _, params: __, ...request } = call.request
      d = await guard.acquire(call.ctx, request, call.wait)
    }
    if (!d.ok) {
      stats.refused++
      throw limited(d)
    }
    if (d.cached !== null) stats.cached++
    return d
  }

  const cancel = (d) =>
    d.cancel().then(
      () => void stats.cancelled++,
      () => void stats.settleErrors++,
    )

  /**
   * Ends `d` with what the call used: the AI SDK's usage, else (none reported) the input
   * estimate and the output counted from what was produced. `entry` (the answer, cacheable)
   * is what the guard caches.
   */
  const settle = (d, call, usage, produced, entry) => {
    let u = null
    try {
      u = usageFromAiSdk(usage)
    } catch {
      u = null
    }
    if (u === null) {
      stats.estimated++
      u = { inputTokens: call.input, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: countTokens(produced, call.modelId, { fallback: 'o200k_base' }), reasoningTokens: 0 }
    }
    const value = entry === null ? u : { ...entry, usage: u }
    return d.settle(value).then(
      () => void stats.settled++,
      () => void stats.settleErrors++,
    )
  }

  return {
    specificationVersion: 'v4',

    /** Reads the call's context, then strips `providerOptions.tollgate` so the provider never sees it. */
    async transformParams({ params, model }) {
      const ctx = contextOf(params, model)
      const providerOptions = withoutOwn(params.providerOptions)
      const next = providerOptions === params.providerOptions ? { ...params } : { ...params, providerOptions }
      if (providerOptions === undefined) delete next.providerOptions
      contexts.set(next, ctx)
      return next
    },

    async wrapGenerate({ doGenerate, params, model }) {
      const call = prepare(params, model)
      const d = await acquire(call)
      if (d.cached !== null) return fromEntry(d.cached)
      let result
      try {
        result = await doGenerate()
      } catch (e) {
        await cancel(d)
        throw e
      }
      const content = Array.isArray(result.content) ? result.content : []
      const done = result.finishReason && result.finishReason.unified !== 'error'
      const entry = done && plain(content) && plain(result.providerMetadata) ? entryOf(content, result.finishReason, result.providerMetadata, result.response) : null
      await settle(d, call, result.usage, producedText(content), entry)
      return result
    },

    async wrapStream({ doStream, params, model }) {
      const call = prepare(params, model)
      const d = await acquire(call)
      if (d.cached !== null) return { stream: replay(d.cached) }
      let result
      try {
        result = await doStream()
      } catch (e) {
        await cancel(d)
        throw e
      }
      return { ...result, stream: watched(result.stream, (seen, finished) => settle(d, call, seen.usage, producedText(seen.content), finished ? seen.entry() : null)) }
    },

    /** What this middleware did: calls, refused, cached, settled, cancelled, `estimated` (settled without usage), `settleErrors`. */
    stats() {
      return { ...stats }
    },
  }
}

// ---- the cache entry: the answer as JSON, read back in the AI SDK's shapes ---------------

function entryOf(content, finishReason, providerMetadata, response) {
  const r = response || {}
  const meta = { id: r.id, modelId: r.modelId, timestamp: r.timestamp instanceof Date ? r.timestamp.toISOString() : undefined }
  return { tollgate: ENTRY, content, finishReason, providerMetadata, response: meta }
}

function isEntry(x) {
  return x !== null && typeof x === 'object' && x.tollgate === ENTRY && Array.isArray(x.content) && x.finishReason && x.usage
}

/** A cached answer as a generate result (its usage as it was; `providerMetadata.tollgate.cached`). */
function fromEntry(e) {
  const response = { ...e.response }
  if (typeof response.timestamp === 'string') response.timestamp = new Date(response.timestamp)
  return { content: e.content, finishReason: e.finishReason, usage: toModelUsage(e.usage), providerMetadata: { ...(e.providerMetadata || {}), [NAMESPACE]: { cached: true } }, response, warnings: [] }
}

/** A cached answer as a model stream. */
function replay(e) {
  const r = fromEntry(e)
  const parts = [{ type: 'stream-start', warnings: [] }, { type: 'response-metadata', ...r.response }]
  r.content.forEach((c, i) => {
    if (c.type === 'text' || c.type === 'reasoning') {
      const id = `tollgate-${i}`
      parts.push({ type: `${c.type}-start`, id }, { type: `${c.type}-delta`, id, delta: c.text }, { type: `${c.type}-end`, id })
    } else {
      parts.push(c)
    }
  })
  parts.push({ type: 'finish', usage: r.usage, finishReason: r.finishReason, providerMetadata: r.providerMetadata })
  return new ReadableStream({
    start(controller) {
      for (const p of parts) controller.enqueue(p)
      controller.close()
    },
  })
}

/**
 * Passes a model stream through, reading its parts; calls `end(seen, finished)` once, when the
 * stream ends (`finished`: a finish part came), errors or is cancelled by the reader.
 */
function watched(stream, end) {
  const seen = new Seen()
  return watchStream(stream, (reason) => end(seen, reason === 'done' && seen.finished), (part) => seen.add(part))
}

/** What a stream delivered: its content (rebuilt from the deltas), usage and finish. */
class Seen {
  content = []
  open = new Map()
  usage = undefined
  finishReason = undefined
  providerMetadata = undefined
  metadata = {}
  finished = false
  cacheable = true

  add(p) {
    if (p === null || typeof p !== 'object') return
    switch (p.type) {
      case 'text-start':
      case 'reasoning-start': {
        const c = { type: p.type.slice(0, -6), text: '' }
        this.open.set(`${c.type}:${p.id}`, c)
        this.content.push(c)
        break
      }
      case 'text-delta':
      case 'reasoning-delta': {
        const type = p.type.slice(0, -6)
        let c = this.open.get(`${type}:${p.id}`)
        if (c === undefined) {
          c = { type, text: '' }
          this.open.set(`${type}:${p.id}`, c)
          this.content.push(c)
        }
        c.text += typeof p.delta === 'string' ? p.delta : ''
        break
      }
      case 'text-end':
      case 'reasoning-end':
      case 'stream-start':
      case 'tool-input-start':
      case 'tool-input-delta':
      case 'tool-input-end':
      case 'ping':
      case 'raw':
        break
      case 'response-metadata':
        this.metadata = p
        break
      case 'finish':
        this.finished = p.finishReason === undefined || p.finishReason.unified !== 'error'
        this.usage = p.usage
        this.finishReason = p.finishReason
        this.providerMetadata = p.providerMetadata
        break
      case 'error':
        this.cacheable = false
        break
      default:
        // tool calls, sources, files…: content as they are.
        this.content.push(p)
    }
  }

  /** The answer to cache, or null when it cannot be. */
  entry() {
    if (!this.cacheable || !this.finished || !plain(this.content) || !plain(this.providerMetadata)) return null
    return entryOf(this.content, this.finishReason, this.providerMetadata, this.metadata)
  }
}

module.exports = { guardMiddleware, usageFromAiSdk }
