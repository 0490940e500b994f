'use strict'
// tollgate/openai: an OpenAI client whose `chat.completions.create`, `responses.create` and
// `embeddings.create` go through a Guard — one decision before the request, one settlement
// with the real usage after it (streams included), the routed API key used for the call, and
// the provider's rate-limit headers fed back. Reference: docs/openai.md.

const { Wrapper, view, checkClient, bodyOf, capOf, embeddingTokens, without, FALLBACK } = require('./sdk')
const { countMessageTokens } = require('../tokens')
const { invalidArg } = require('../errors')
const v = require('../validate')

/** The `openai` major versions this wrapper is tested with. */
const SUPPORTED_OPENAI_VERSIONS = Object.freeze([7])

const bearer = (secret) => ({ Authorization: `Bearer ${secret}` })
const never = () => false

// ---- chat.completions ----------------------------------------------------------------------

/** Text an OpenAI chat chunk adds to the answer (content, refusal, tool arguments). */
function chatText(chunk) {
  let t = ''
  const choices = chunk && Array.isArray(chunk.choices) ? chunk.choices : []
  for (const ch of choices) {
    const d = ch && ch.delta
    if (!d) continue
    if (typeof d.content === 'string') t += d.content
    if (typeof d.refusal === 'string') t += d.refusal
    if (Array.isArray(d.tool_calls)) for (const tc of d.tool_calls) if (tc && tc.function && typeof tc.function.arguments === 'string') t += tc.function.arguments
  }
  return t
}

/** The usage-only last chunk, which the caller did not ask for. */
const usageChunk = (chunk) => chunk && Array.isArray(chunk.choices) && chunk.choices.length === 0 && chunk.usage !== null && chunk.usage !== undefined

function chatCall(client, w, ctx, body, options) {
  const b = bodyOf(body, 'chat.completions.create')
  if (!Array.isArray(b.messages)) throw invalidArg(`chat.completions.create: body.messages must be an array, got ${v.describe(b.messages)}`)
  const stream = b.stream === true
  let sent = b
  let hide = never
  if (stream && !(b.stream_options && b.stream_options.include_usage === true)) {
    // Ask for the final usage chunk, and keep it from a caller who did not ask for it.
    sent = { ...b, stream_options: { ...b.stream_options, include_usage: true } }
    hide = usageChunk
  }
  // n answers may each be as long as the cap.
  const choices = typeof b.n === 'number' && Number.isInteger(b.n) && b.n > 1 ? b.n : 1
  const cap = capOf(b.max_completion_tokens, b.max_tokens)
  return {
    ctx,
    body: b,
    model: b.model,
    messages: b.messages,
    tokens: countMessageTokens(b.messages, b.model, FALLBACK),
    maxTokens: choices === 1 ? cap : (cap === null ? w.defaultMaxTokens() : cap) * choices,
    params: () => without(b, ['model', 'messages', 'stream', 'stream_options']),
    cacheable: !stream,
    stream,
    options,
    authHeaders: bearer,
    invoke: (o) => client.chat.completions.create(sent, o),
    track: { text: chatText, hide },
  }
}

// ---- responses -----------------------------------------------------------------------------

/** A Responses API input as chat messages (for the estimate and the cache key). */
function inputMessages(b) {
  const out = []
  if (typeof b.instructions === 'string') out.push({ role: 'system', content: b.instructions })
  if (typeof b.input === 'string') out.push({ role: 'user', content: b.input })
  else if (Array.isArray(b.input)) {
    for (const item of b.input) if (item && typeof item === 'object' && 'content' in item) out.push({ role: item.role, content: item.content })
  }
  return out
}

const RESPONSE_TEXT = new Set(['response.output_text.delta', 'response.refusal.delta', 'response.function_call_arguments.delta', 'response.reasoning_summary_text.delta'])
const responseText = (e) => (e && RESPONSE_TEXT.has(e.type) && typeof e.delta === 'string' ? e.delta : '')

function responsesCall(client, w, ctx, body, options) {
  const b = bodyOf(body, 'responses.create')
  const stream = b.stream === true
  const messages = inputMessages(b)
  return {
    ctx,
    body: b,
    model: b.model,
    messages,
    tokens: countMessageTokens(messages, b.model, FALLBACK),
    maxTokens: capOf(b.max_output_tokens),
    params: () => without(b, ['model', 'input', 'instructions', 'stream']),
    // A request that continues an earlier response depends on state the cache key cannot see.
    cacheable: !stream && b.previous_response_id === undefined && b.conversation === undefined,
    stream,
    options,
    authHeaders: bearer,
    invoke: (o) => client.responses.create(b, o),
    track: { text: responseText, hide: never },
  }
}

// ---- embeddings ----------------------------------------------------------------------------

function embeddingsCall(client, w, ctx, body, options) {
  const b = bodyOf(body, 'embeddings.create')
  return {
    ctx,
    body: b,
    model: b.model,
    tokens: embeddingTokens(b.input, b.model),
    maxTokens: 0,
    cacheable: false,
    stream: false,
    options,
    authHeaders: bearer,
    invoke: (o) => client.embeddings.create(b, o),
  }
}

/** The guarded view of `client` for one context (`fixed`), or for `options.context` (`fixed` null). */
function wrap(client, w, fixed) {
  const ctxOf = (body) => (fixed === null ? w.context(body) : fixed.ctx)
  const method = (make) => (body, options) => w.run(() => make(client, w, ctxOf(body), body, options))
  // Each resource's view is made when first read: a `withContext` view per call makes only
  // the one it calls.
  let chat
  let embeddings
  let responses
  const hasResponses = !!(client.responses && typeof client.responses.create === 'function')
  const overrides = {
    get chat() {
      return (chat ??= view(client.chat, { completions: view(client.chat.completions, { create: method(chatCall) }) }))
    },
    get embeddings() {
      return (embeddings ??= view(client.embeddings, { create: method(embeddingsCall) }))
    },
    withContext: (ctx) => wrap(client, w, { ctx }),
    tollgate: w.info(client),
  }
  if (hasResponses) {
    Object.defineProperty(overrides, 'responses', { enumerable: true, get: () => (responses ??= view(client.responses, { create: method(responsesCall) })) })
  }
  return view(client, overrides)
}

/**
 * `client` (an `openai` client) with `chat.completions.create`, `responses.create` and
 * `embeddings.create` guarded by `guard`. See docs/openai.md.
 */
function guardOpenAI(client, guard, options) {
  checkClient(client, 'openai', SUPPORTED_OPENAI_VERSIONS, (c) => !!(c.chat && c.chat.completions && typeof c.chat.completions.create === 'function' && c.embeddings && typeof c.embeddings.create === 'function'))
  return wrap(client, new Wrapper(guard, options, 'openai'), null)
}

module.exports = { guardOpenAI, SUPPORTED_OPENAI_VERSIONS }
