// ESM entry of tollgate/dashboard: the same objects as the CommonJS entry.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const d = require('./dashboard.js')

export const { dashboard } = d
export default d
