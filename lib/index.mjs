// ESM entry: the same objects as the CommonJS entry (one native addon per process).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const tollgate = require('./index.js')

export const {
  MemoryStore,
  RedisStore,
  ResponseCache,
  RateLimiter,
  TokenBudget,
  SessionStore,
  StoreError,
  codes,
  requestKey,
} = tollgate
export default tollgate
