'use strict'
// Argument checks shared by every class. Each throws a coded TypeError or RangeError.

const { invalidArg, outOfRange } = require('./errors')

/** Longest id (provider, bucket, session id, …) in UTF-16 code units. */
const MAX_ID_LENGTH = 1024

function describe(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return `a string of length ${v.length}`
  if (typeof v === 'number') return `the number ${v}`
  return `a value of type ${typeof v}`
}

/** A non-empty string of at most MAX_ID_LENGTH characters. */
function id(v, name) {
  if (typeof v !== 'string' || v.length === 0) {
    throw invalidArg(`${name} must be a non-empty string, got ${describe(v)}`)
  }
  if (v.length > MAX_ID_LENGTH) {
    throw outOfRange(`${name} must be at most ${MAX_ID_LENGTH} characters, got ${v.length}`)
  }
  return v
}

/**
 * A string (may be empty), for prefixes. Unlike ids, which are encoded into keys (lone
 * surrogates included, see src/store/key.rs), a prefix is written as is, so it must be
 * well-formed UTF-16.
 */
function string(v, name) {
  if (typeof v !== 'string') throw invalidArg(`${name} must be a string, got ${describe(v)}`)
  if (v.length > MAX_ID_LENGTH) {
    throw outOfRange(`${name} must be at most ${MAX_ID_LENGTH} characters, got ${v.length}`)
  }
  if (!v.isWellFormed()) throw invalidArg(`${name} must not hold a lone surrogate (half of a UTF-16 pair)`)
  return v
}

/** A well-formed string (no lone surrogate), for values stored as text and read back. */
function wellFormed(v, name) {
  if (!v.isWellFormed()) throw invalidArg(`${name} must not hold a lone surrogate (half of a UTF-16 pair)`)
  return v
}

/** An integer in [min, max]. */
function integer(v, name, min, max) {
  if (typeof v !== 'number') throw invalidArg(`${name} must be a number, got ${describe(v)}`)
  if (!Number.isInteger(v) || v < min || v > max) {
    throw outOfRange(`${name} must be an integer from ${min} to ${max}, got ${v}`)
  }
  return v
}

/** A finite number of seconds in (0, max], returned as whole milliseconds (at least 1). */
function seconds(v, name, max) {
  if (typeof v !== 'number') throw invalidArg(`${name} must be a number of seconds, got ${describe(v)}`)
  if (!Number.isFinite(v) || v <= 0 || v > max) {
    throw outOfRange(`${name} must be a number of seconds above 0 and at most ${max}, got ${v}`)
  }
  return Math.max(1, Math.round(v * 1000))
}

/** Milliseconds for timeouts, in [1, max]. */
function millis(v, name, max) {
  if (typeof v !== 'number') throw invalidArg(`${name} must be a number of milliseconds, got ${describe(v)}`)
  if (!Number.isFinite(v) || v < 1 || v > max) {
    throw outOfRange(`${name} must be from 1 to ${max} milliseconds, got ${v}`)
  }
  return Math.round(v)
}

function fn(v, name) {
  if (typeof v !== 'function') throw invalidArg(`${name} must be a function, got ${describe(v)}`)
  return v
}

/** A plain options object, or undefined (→ {}). */
function options(v, name) {
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw invalidArg(`${name} must be an object, got ${describe(v)}`)
  }
  return v
}

/** JSON text of a value that must survive a JSON round trip (not undefined, no cycles). */
function json(v, name) {
  let text
  try {
    text = JSON.stringify(v)
  } catch (e) {
    throw invalidArg(`${name} cannot be stored as JSON: ${e && e.message}`)
  }
  if (text === undefined) throw invalidArg(`${name} cannot be stored as JSON, got ${describe(v)}`)
  return text
}

module.exports = { MAX_ID_LENGTH, describe, id, string, wellFormed, integer, seconds, millis, fn, options, json }
