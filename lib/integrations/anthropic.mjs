// ESM entry of tollgate/anthropic: the same objects as the CommonJS entry.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const m = require('./anthropic.js')

export const { guardAnthropic, SUPPORTED_ANTHROPIC_VERSIONS } = m
export default m
