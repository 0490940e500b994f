'use strict'
// Errors tollgate throws and rejects with. Every one carries a stable `code`. They are built
// here, in JavaScript, so they belong to the caller's realm: `instanceof Error` holds inside
// jest's sandbox too, where errors made by native code would fail it.

/** Codes, stable across releases. */
const codes = Object.freeze({
  INVALID_ARG: 'ERR_TOLLGATE_INVALID_ARG',
  OUT_OF_RANGE: 'ERR_TOLLGATE_OUT_OF_RANGE',
  TOO_LARGE: 'ERR_TOLLGATE_TOO_LARGE',
  NOT_A_MESSAGE_LIST: 'ERR_TOLLGATE_NOT_A_MESSAGE_LIST',
  UNKNOWN_MODEL: 'ERR_TOLLGATE_UNKNOWN_MODEL',
  UNKNOWN_OPTION: 'ERR_TOLLGATE_UNKNOWN_OPTION',
  NO_USAGE: 'ERR_TOLLGATE_NO_USAGE',
  STORE_UNAVAILABLE: 'ERR_TOLLGATE_STORE_UNAVAILABLE',
  STORE_TIMEOUT: 'ERR_TOLLGATE_STORE_TIMEOUT',
  STORE_CLOSED: 'ERR_TOLLGATE_STORE_CLOSED',
  STORE_ERROR: 'ERR_TOLLGATE_STORE_ERROR',
  STORE_AUTH: 'ERR_TOLLGATE_STORE_AUTH',
  STORE_OOM: 'ERR_TOLLGATE_STORE_OOM',
  STORE_EVICTION: 'ERR_TOLLGATE_STORE_EVICTION',
  INTERNAL: 'ERR_TOLLGATE_INTERNAL',
  /** A user callback that gates a decision (SemanticCache `embed`) did not settle in time. */
  CALLBACK_TIMEOUT: 'ERR_TOLLGATE_CALLBACK_TIMEOUT',
  // createLLMRateLimiter / ProviderLimiter (plain Errors: a job's outcome, not bad input)
  NO_CAPACITY: 'ERR_TOLLGATE_NO_CAPACITY',
  JOB_REJECTED: 'ERR_TOLLGATE_JOB_REJECTED',
  JOB_ATTEMPTS: 'ERR_TOLLGATE_JOB_ATTEMPTS',
  LIMITER_STOPPED: 'ERR_TOLLGATE_LIMITER_STOPPED',
  // Guard
  /** `guard.run` was refused by a limit (the error carries the decision). */
  LIMITED: 'ERR_TOLLGATE_LIMITED',
  /** A guard decision was settled or cancelled twice, or a refused one was ended. */
  DECISION_ENDED: 'ERR_TOLLGATE_DECISION_ENDED',
})

/**
 * A store (Redis) could not answer: unavailable or timed out (an outage, the only failures an
 * `onStoreError` policy answers), closed, or it replied an error (credentials, a full server, a
 * key of another type, a script error, an evicting server refused).
 */
class StoreError extends Error {
  constructor(code, message) {
    super(message)
    this.name = 'StoreError'
    this.code = code
  }
}

function withCode(err, code) {
  Object.defineProperty(err, 'code', { value: code, enumerable: true, writable: true, configurable: true })
  return err
}

/** A TypeError with `code` ERR_TOLLGATE_INVALID_ARG. */
function invalidArg(message) {
  return withCode(new TypeError(message), codes.INVALID_ARG)
}

/** A RangeError with `code` ERR_TOLLGATE_OUT_OF_RANGE (or the code given). */
function outOfRange(message, code = codes.OUT_OF_RANGE) {
  return withCode(new RangeError(message), code)
}

const CODED = /^(ERR_TOLLGATE_[A-Z_]+): ([\s\S]*)$/
const NAPI_STATUS = /^(GenericFailure|InvalidArg|[A-Za-z]+Expected|PendingException|Cancelled|QueueFull|Closing|Unknown)$/

/** Turns an error from the native addon into one of this realm, keeping its code. */
function fromNative(err) {
  const m = CODED.exec(err && err.message)
  if (!m) {
    // A napi status without one of our codes is a bug in tollgate (a caught panic, say):
    // still an Error of this realm, with a code. Anything else (an error thrown by a
    // user's keyFn or clock) passes through untouched.
    if (err && NAPI_STATUS.test(err.code)) {
      return withCode(new Error(`tollgate internal error: ${err.message}`), codes.INTERNAL)
    }
    return err
  }
  const [, code, message] = m
  switch (code) {
    case codes.INVALID_ARG:
    case codes.NOT_A_MESSAGE_LIST:
    case codes.UNKNOWN_OPTION:
    case codes.NO_USAGE:
      return withCode(new TypeError(message), code)
    case codes.OUT_OF_RANGE:
    case codes.TOO_LARGE:
    case codes.UNKNOWN_MODEL:
      return withCode(new RangeError(message), code)
    default:
      return new StoreError(code, message)
  }
}

/** For `promise.then(ok, rethrow)`. */
function rethrow(err) {
  throw fromNative(err)
}

module.exports = { codes, StoreError, invalidArg, outOfRange, fromNative, rethrow, withCode }
