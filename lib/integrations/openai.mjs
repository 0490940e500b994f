// ESM entry of tollgate/openai: the same objects as the CommonJS entry.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const m = require('./openai.js')

export const { guardOpenAI, SUPPORTED_OPENAI_VERSIONS } = m
export default m
