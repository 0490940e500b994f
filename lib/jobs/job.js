'use strict'
// A job: queueJob's options read into the record the limiter tracks (getActiveJobs), the usage
// a job reports (its result, or reject(usage)) checked, each attempt priced as costOf prices
// it, and the context handed to onComplete / onError.

const native = require('../native')
const { codes, invalidArg, outOfRange, withCode } = require('../errors')
const v = require('../validate')
const { usageFrom } = require('../usage')
const { toUsd } = require('../cost')
const { MAX_LIMIT, fnOrNull } = require('./config')

function jobError(code, message, cause) {
  return withCode(new Error(message, cause === undefined ? undefined : { cause }), code)
}

/** A job from queueJob's options; its type from `capacity` (optional with a single type). */
function newJob(options, capacity, now) {
  const o = v.options(options, 'options')
  const jobId = v.id(o.jobId, 'options.jobId')
  const types = capacity.types
  let type
  if (o.jobType === undefined && types.length === 1) type = types[0]
  else {
    type = capacity.typeById(o.jobType)
    if (!type) {
      throw outOfRange(`Unknown job type '${o.jobType}'. Valid job types are: ${types.map((t) => t.id).join(', ')}`)
    }
  }
  v.fn(o.job, 'options.job')
  const args = o.args === undefined || o.args === null ? null : v.options(o.args, 'options.args')
  return {
    jobId,
    type,
    fn: o.job,
    args,
    onComplete: fnOrNull(o.onComplete, 'options.onComplete'),
    onError: fnOrNull(o.onError, 'options.onError'),
    /** Model indexes tried since the last restart of the escalation order. */
    tried: new Set(),
    attempts: 0,
    usage: [],
    /** The cost so far in nano-dollars; null once a model without a price ran it. */
    totalNano: 0,
    status: 'waiting-for-capacity',
    queuedAt: now(),
    startedAt: null,
    currentModel: null,
    waitStartedAt: null,
    maxWaitMS: null,
  }
}

/**
 * A job's usage: `{requestCount, inputTokens, cachedTokens, outputTokens}`, where
 * `inputTokens` counts every input token, cached ones included (as usageFrom and every class
 * count them), or `{requestCount, usage}` with anything usageFrom reads (a provider response,
 * its usage object, tollgate's Usage). `requestCount` defaults to 1 with `usage`, else 0.
 */
function checkUsage(u, name) {
  if (u === null || typeof u !== 'object') throw invalidArg(`${name} must be an object, got ${v.describe(u)}`)
  const n = (k) => (u[k] === undefined ? 0 : v.integer(u[k], `${name}.${k}`, 0, MAX_LIMIT))
  if (u.usage !== undefined) {
    const r = usageFrom(u.usage)
    if (r === null) throw withCode(new TypeError(`${name}.usage carries no usage (give a provider response, its usage, or tollgate's Usage)`), codes.NO_USAGE)
    const requestCount = u.requestCount === undefined ? 1 : n('requestCount')
    return { requestCount, inputTokens: r.inputTokens, cachedTokens: r.cachedInputTokens, cacheWriteTokens: r.cacheWriteTokens, outputTokens: r.outputTokens }
  }
  const out = { requestCount: n('requestCount'), inputTokens: n('inputTokens'), cachedTokens: n('cachedTokens'), cacheWriteTokens: 0, outputTokens: n('outputTokens') }
  if (u.inputTokens === undefined && u.outputTokens === undefined) {
    throw withCode(new TypeError(`${name} carries no usage: give inputTokens and outputTokens, or usage (a provider response)`), codes.NO_USAGE)
  }
  if (out.cachedTokens > out.inputTokens) {
    throw outOfRange(`${name}.cachedTokens (${out.cachedTokens}) exceeds ${name}.inputTokens (${out.inputTokens}): inputTokens counts every input token, cached ones included`)
  }
  return out
}

/** What a usage counts against the limits: tokens (input + output) and requests. */
function actualOf(u) {
  return { tokens: u.inputTokens + u.outputTokens, requests: u.requestCount }
}

/** Records an attempt's usage on `model`, priced as costOf does (integer nano-dollars); null cost on a model with no price. */
function account(j, model, u) {
  const nano = model.price === null ? null : native.costNanoOfUsage([u.inputTokens, u.cachedTokens, u.cacheWriteTokens, u.outputTokens], model.price, false)
  const { cacheWriteTokens, ...entry } = u
  j.usage.push({ modelId: model.id, ...entry, cost: nano === null ? null : toUsd(nano) })
  if (nano === null || j.totalNano === null) j.totalNano = null
  else j.totalNano += nano
}

/** The context onComplete and onError receive. */
function contextOf(j) {
  return { jobId: j.jobId, totalCost: j.totalNano === null ? null : toUsd(j.totalNano), usage: j.usage.slice() }
}

module.exports = { jobError, newJob, checkUsage, actualOf, account, contextOf }
