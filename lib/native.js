'use strict'
// The native addon, through the loader `napi build` generates (../index.js). Always loaded
// through this one path: loading one addon from two paths in a process is unsafe.
try {
  module.exports = require('../index.js')
} catch (cause) {
  const { platformArchAbi, waysOut } = require('./platform')
  throw new Error(
    [`tollgate: no native addon for this platform (${platformArchAbi()}).`, ...waysOut()].join('\n'),
    { cause },
  )
}
