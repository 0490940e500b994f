'use strict'
// The native addon, through the loader `napi build` generates (../index.js). Always loaded
// through this one path: loading one addon from two paths in a process is unsafe.
module.exports = require('../index.js')
