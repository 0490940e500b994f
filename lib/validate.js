'use strict'
// Argument checks shared by every class. Each throws a coded TypeError or RangeError.

const { invalidArg, outOfRange, withCode, codes } = require('./errors')

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

/** Edit distance of two short names (case-insensitive). */
function distance(a, b) {
  a = a.toLowerCase()
  b = b.toLowerCase()
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = row
  }
  return prev[b.length]
}

/** `requestsPerMinute` → `rpm`: the abbreviation people write for a camelCase name. */
const initials = (name) => (name[0] + name.slice(1).replace(/[^A-Z]/g, '')).toLowerCase()

/** The known name `word` most likely meant: its abbreviation, else the nearest by edit distance. */
function closestName(word, known) {
  const w = String(word).toLowerCase()
  const abbreviated = known.find((k) => initials(k) === w || initials(k).replace(/r$/, '') === w)
  if (abbreviated) return abbreviated
  const stem = w.slice(0, Math.max(4, w.length - 2))
  const containing = w.length >= 4 && known.find((k) => k.toLowerCase().includes(stem))
  if (containing) return containing
  let best = known[0]
  for (const k of known) if (distance(w, k) < distance(w, best)) best = k
  return best
}

/**
 * Refuses option names it does not know (`{ rpm: 5 }` would otherwise set no limit at all),
 * naming the closest known one: a TypeError with code ERR_TOLLGATE_UNKNOWN_OPTION.
 */
function knownKeys(o, known, name) {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      const e = withCode(new TypeError(`${name}.${k} is not an option; did you mean ${name}.${closestName(k, known)}? (known: ${known.join(', ')})`), codes.UNKNOWN_OPTION)
      e.suggestion = closestName(k, known)
      throw e
    }
  }
  return o
}

module.exports = { MAX_ID_LENGTH, describe, id, string, wellFormed, integer, seconds, millis, fn, options, json, knownKeys, closestName }
