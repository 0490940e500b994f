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
  Quota,
  QuotaManager,
  cooldownMs,
  dailyCap,
  tokenWaitMs,
  WINDOW_MS,
  BUFFER_MS,
  THRESHOLD_PCT,
  countTokens,
  countTokensBatch,
  countMessageTokens,
  encodingForModel,
  withRetry,
  priceOf,
  definePrice,
  costOf,
  estimateCost,
  usageFrom,
  CostTracker,
  ModelTiers,
  MODEL_TIERS,
  metrics,
  POLICIES,
  createLLMRateLimiter,
  createRedisBackend,
  getDefaultMaxWaitMS,
  DEFAULT_RATIO_ADJUSTMENT_CONFIG,
  ProviderLimiter,
  SemanticCache,
} = tollgate
export default tollgate
