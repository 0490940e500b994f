'use strict'
// tollgate/anthropic: an Anthropic client whose `messages.create` (streaming too) and
// `messages.stream` go through a Guard — one decision before the request, one settlement with
// the real usage after it (from `message_start` and `message_delta` on a stream; cache reads
// and writes priced), the routed API key used for the call, and the provider's rate-limit
// headers fed back. Reference: docs/anthropic.md.

const { Wrapper, view, checkClient, bodyOf, capOf, without, FALLBACK } = require('./sdk')
const { countMessageTokens } = require('../tokens')
const { invalidArg } = require('../errors')
const v = require('../validate')

/** The `@anthropic-ai/sdk` major versions this wrapper is tested with. */
const SUPPORTED_ANTHROPIC_VERSIONS = Object.freeze([1])

const never = () => false

/** Text a stream event adds to the answer (text, tool input, thinking). */
function deltaText(e) {
  if (!e || e.type !== 'content_block_delta' || !e.delta) return ''
  const d = e.delta
  return typeof d.text === 'string' ? d.text : typeof d.partial_json === 'string' ? d.partial_json : typeof d.thinking === 'string' ? d.thinking : ''
}

function messagesCall(client, w, ctx, body, options) {
  const b = bodyOf(body, 'messages.create')
  if (!Array.isArray(b.messages)) throw invalidArg(`messages.create: body.messages must be an array, got ${v.describe(b.messages)}`)
  // The system prompt is input too.
  const messages = b.system === undefined ? b.messages : [{ role: 'system', content: b.system }, ...b.messages]
  const stream = b.stream === true
  return {
    ctx,
    body: b,
    model: b.model,
    messages,
    tokens: countMessageTokens(messages, b.model, FALLBACK),
    maxTokens: capOf(b.max_tokens),
    params: () => without(b, ['model', 'messages', 'system', 'stream']),
    cacheable: !stream,
    stream,
    options,
    authHeaders: (secret) => ({ 'x-api-key': secret }),
    invoke: (o) => client.messages.create(b, o),
    track: { text: deltaText, hide: never },
  }
}

/** The guarded view of `client` for one context (`fixed`), or for `options.context` (`fixed` null). */
function wrap(client, w, fixed) {
  const ctxOf = (body) => (fixed === null ? w.context(body) : fixed.ctx)
  const overrides = {
    create: (body, options) => w.run(() => messagesCall(client, w, ctxOf(body), body, options)),
    // The SDK's MessageStream calls `this.create(…, { stream: true })`: with `this` the guarded
    // view, the stream is guarded and settled like any other.
    stream: (body, options) => client.messages.stream.call(messages, body, options),
  }
  const messages = view(client.messages, overrides)
  return view(client, { messages, withContext: (ctx) => wrap(client, w, { ctx }), tollgate: w.info(client) })
}

/**
 * `client` (an `@anthropic-ai/sdk` client) with `messages.create` and `messages.stream`
 * guarded by `guard`. See docs/anthropic.md.
 */
function guardAnthropic(client, guard, options) {
  checkClient(client, '@anthropic-ai/sdk', SUPPORTED_ANTHROPIC_VERSIONS, (c) => !!(c.messages && typeof c.messages.create === 'function' && typeof c.messages.stream === 'function'))
  return wrap(client, new Wrapper(guard, options, 'anthropic'), null)
}

module.exports = { guardAnthropic, SUPPORTED_ANTHROPIC_VERSIONS }
