'use strict'
// Canonical JSON of a request (RFC 8785, JCS), the text cache keys hash (engine/cache_key.rs).
// Written by walking the value with an explicit stack, so nesting depth is bounded by memory,
// not by the call stack. Object properties are sorted by UTF-16 code units and numbers are
// printed as JavaScript prints them, so property order never changes a key. Where JSON would
// silently change a value, the value is refused (ERR_TOLLGATE_INVALID_ARG) instead: NaN and
// ±Infinity, undefined or a hole in an array, functions, symbols, BigInt, Map, Set, cycles —
// otherwise `[NaN]`, `[null]`, `[() => 1]` and `[undefined]` would be one key. A property
// whose value is undefined is left out, as JSON (and so the request actually sent) leaves it
// out. A lone surrogate is written as its `\uXXXX` escape (JSON.stringify's choice), so
// `"\ud800"` and `"\udbff"` stay two strings.

const { invalidArg } = require('./errors')

const OPEN = 0
const CLOSE = 1

/** Objects whose contents JSON does not see: all of them would read as `{}`. */
const HIDDEN = new Set(['[object Map]', '[object Set]', '[object WeakMap]', '[object WeakSet]', '[object Promise]'])

/** Where a value sits, for error messages: `messages[2].content`. */
function pathOf(frame) {
  const parts = []
  for (let f = frame; f !== null; f = f.parent) parts.push(f.key)
  let out = ''
  for (let i = parts.length - 1; i >= 0; i--) {
    const k = parts[i]
    out += typeof k === 'number' ? `[${k}]` : out === '' ? k : /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`
  }
  return out
}

function refuse(frame, what) {
  return invalidArg(`${pathOf(frame)} is ${what}, which JSON cannot carry faithfully: a cache key cannot be made of it`)
}

/** The canonical JSON text of `value`; `name` names it in errors. */
function canonical(value, name) {
  let out = ''
  const onPath = new Set()
  // Work items: a value to write (OPEN) or a container to close (CLOSE), or a literal string.
  const stack = [{ kind: OPEN, value, key: name, parent: null, holder: '' }]
  while (stack.length > 0) {
    const item = stack.pop()
    if (typeof item === 'string') {
      out += item
      continue
    }
    if (item.kind === CLOSE) {
      onPath.delete(item.value)
      out += item.close
      continue
    }
    let x = item.value
    if (x !== null && (typeof x === 'object' || typeof x === 'bigint') && typeof x.toJSON === 'function') {
      x = x.toJSON(item.holder)
    }
    switch (typeof x) {
      case 'string':
        out += JSON.stringify(x)
        continue
      case 'number':
        if (!Number.isFinite(x)) throw refuse(item, String(x))
        out += JSON.stringify(x)
        continue
      case 'boolean':
        out += x ? 'true' : 'false'
        continue
      case 'undefined':
        throw refuse(item, 'undefined')
      case 'function':
        throw refuse(item, 'a function')
      case 'symbol':
        throw refuse(item, 'a symbol')
      case 'bigint':
        throw refuse(item, 'a BigInt')
    }
    if (x === null) {
      out += 'null'
      continue
    }
    if (x instanceof Number || x instanceof String || x instanceof Boolean) {
      stack.push({ kind: OPEN, value: x.valueOf(), key: item.key, parent: item.parent, holder: item.holder })
      continue
    }
    // By tag rather than instanceof, so a Map made in another realm (a jest sandbox) is caught.
    const tag = Object.prototype.toString.call(x)
    if (HIDDEN.has(tag)) throw refuse(item, `a ${tag.slice(8, -1)}`)
    if (onPath.has(x)) throw refuse(item, 'a cycle')
    onPath.add(x)
    if (Array.isArray(x)) {
      out += '['
      stack.push({ kind: CLOSE, value: x, close: ']' })
      for (let i = x.length - 1; i >= 0; i--) {
        if (!(i in x)) throw refuse({ key: i, parent: item }, 'a hole')
        stack.push({ kind: OPEN, value: x[i], key: i, parent: item, holder: String(i) })
        if (i > 0) stack.push(',')
      }
      continue
    }
    out += '{'
    stack.push({ kind: CLOSE, value: x, close: '}' })
    const keys = Object.keys(x).sort()
    let first = true
    const items = []
    for (const k of keys) {
      const v = x[k]
      if (v === undefined) continue
      items.push(first ? '' : ',', JSON.stringify(k) + ':', { kind: OPEN, value: v, key: k, parent: item, holder: k })
      first = false
    }
    for (let i = items.length - 1; i >= 0; i--) if (items[i] !== '') stack.push(items[i])
  }
  return out
}

module.exports = { canonical }
