'use strict'
// Token counting, exact for OpenAI's o200k_base and cl100k_base (engine/tokens.rs, GitHub's
// bpe-openai: linear in the worst case). Synchronous: this is CPU work on the caller's thread.

const native = require('./native')
const { fromNative, invalidArg, outOfRange, codes } = require('./errors')
const v = require('./validate')

const ENCODINGS = new Set(['o200k_base', 'cl100k_base'])
/** Model name → encoding (or null), remembered: counting is often called per request. */
const modelEncodings = new Map()

/** The encoding of an OpenAI model name (`o200k_base` / `cl100k_base`), or null when unknown. */
function encodingForModel(model) {
  v.id(model, 'model')
  return native.encodingForModel(model)
}

function resolve(modelOrEncoding, options) {
  const o = v.options(options, 'options')
  const name = modelOrEncoding === undefined ? 'o200k_base' : v.id(modelOrEncoding, 'modelOrEncoding')
  if (ENCODINGS.has(name)) return name
  let found = modelEncodings.get(name)
  if (found === undefined) {
    found = native.encodingForModel(name)
    if (modelEncodings.size >= 1024) modelEncodings.clear()
    modelEncodings.set(name, found)
  }
  if (found !== null) return found
  if (o.fallback !== undefined) {
    if (!ENCODINGS.has(o.fallback)) throw invalidArg(`options.fallback must be 'o200k_base' or 'cl100k_base', got ${v.describe(o.fallback)}`)
    return o.fallback
  }
  throw outOfRange(
    `no known encoding for model ${JSON.stringify(name)}: pass an encoding name, or { fallback: 'o200k_base' }`,
    codes.UNKNOWN_MODEL,
  )
}

function text(t, name) {
  if (typeof t !== 'string') throw invalidArg(`${name} must be a string, got ${v.describe(t)}`)
  return t
}

/** Tokens in `text` for a model (its encoding) or an encoding name. Default `o200k_base`. */
function countTokens(input, modelOrEncoding, options) {
  const e = resolve(modelOrEncoding, options)
  try {
    return native.countTokensWith(text(input, 'text'), e === 'cl100k_base' ? 1 : 0)
  } catch (err) {
    throw fromNative(err)
  }
}

/** Tokens in each of `texts`, in one call. */
function countTokensBatch(texts, modelOrEncoding, options) {
  if (!Array.isArray(texts)) throw invalidArg(`texts must be an array, got ${v.describe(texts)}`)
  const e = resolve(modelOrEncoding, options)
  // A plain loop: forEach skips the holes of a sparse array, which native code cannot read.
  for (let i = 0; i < texts.length; i++) text(texts[i], `texts[${i}]`)
  try {
    return native.countTokensBatchWith(texts, e)
  } catch (err) {
    throw fromNative(err)
  }
}

/**
 * Tokens a list of chat messages costs as a prompt, with OpenAI's formatting overhead (3 per
 * message, 1 per name, 3 to prime the reply). Text content and text parts are counted; images
 * and other parts are not.
 */
function countMessageTokens(messages, model, options) {
  if (!Array.isArray(messages)) throw invalidArg(`messages must be an array, got ${v.describe(messages)}`)
  const e = resolve(model, options)
  try {
    const fast = plainMessageTokens(messages, e === 'cl100k_base' ? 1 : 0)
    if (fast >= 0) return fast
  } catch (err) {
    throw fromNative(err)
  }
  const roles = []
  const texts = []
  const names = []
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw invalidArg(`messages[${i}] must be an object, got ${v.describe(m)}`)
    roles.push(typeof m.role === 'string' ? m.role : '')
    const c = m.content
    if (typeof c === 'string') texts.push([c])
    else if (Array.isArray(c)) texts.push(c.filter((p) => p && typeof p.text === 'string' && (p.type === undefined || p.type === 'text' || p.type === 'input_text')).map((p) => p.text))
    else texts.push([])
    names.push(typeof m.name === 'string' ? m.name : '')
  })
  try {
    return native.countMessageTokensWith(roles, texts, names, e)
  } catch (err) {
    throw fromNative(err)
  }
}

// engine/tokens' count_messages, for the usual prompt (a few messages, each a role, a string
// and no name) without building its nested arrays: the same sum, one zero-copy count per
// message, the roles' tokens remembered (a prompt has a handful of distinct roles).
const TOKENS_PER_MESSAGE = 3
const REPLY_PRIMING = 3
const roleTokens = [new Map(), new Map()]
/**
 * Per encoding, a message object → `{ content, tokens }` of its content when last counted. A
 * conversation resends the same message objects turn after turn (its history, the system
 * prompt): a message whose content is still that string is not counted again (one native call
 * saved per message). Exact: a count depends on the text and the encoding only, and a message
 * whose content changed is counted anew. Weak: a message dropped by the app is dropped here.
 */
const contentTokens = [new WeakMap(), new WeakMap()]

/** The prompt's tokens when every message is `{ role, content: string }`, else -1. */
function plainMessageTokens(messages, encoding) {
  if (messages.length > 8) return -1
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    if (m === null || typeof m !== 'object' || typeof m.content !== 'string' || m.name !== undefined) return -1
  }
  const roles = roleTokens[encoding]
  let n = REPLY_PRIMING
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    const role = typeof m.role === 'string' ? m.role : ''
    let r = roles.get(role)
    if (r === undefined) {
      r = native.countTokensWith(role, encoding)
      if (roles.size >= 64) roles.clear()
      roles.set(role, r)
    }
    const seen = contentTokens[encoding].get(m)
    let c
    if (seen !== undefined && seen.content === m.content) c = seen.tokens
    else {
      c = native.countTokensWith(m.content, encoding)
      contentTokens[encoding].set(m, { content: m.content, tokens: c })
    }
    n += TOKENS_PER_MESSAGE + r + c
  }
  return n
}

module.exports = { countTokens, countTokensBatch, countMessageTokens, encodingForModel }
