'use strict'
// tollgate: rate limits, token budgets, response caching and sessions for LLM apps.
// Types and documentation: index.d.ts beside this file.

const { MemoryStore, RedisStore } = require('./stores')
const { RateLimiter } = require('./rate-limiter')
const { TokenBudget } = require('./token-budget')
const { ResponseCache, requestKey } = require('./response-cache')
const { SessionStore } = require('./session-store')
const { SemanticCache } = require('./semantic-cache')
const { StoreError, codes } = require('./errors')
const { countTokens, countTokensBatch, countMessageTokens, encodingForModel } = require('./tokens')
const { withRetry } = require('./retry')
const { priceOf, definePrice, costOf, estimateCost, catalogModels } = require('./cost')
const { usageFrom, streamUsage, StreamUsage } = require('./usage')
const { CostTracker } = require('./cost-tracker')
const { metrics, POLICIES } = require('./policy')
const { ModelTiers, MODEL_TIERS } = require('./model-tiers')
const { createLLMRateLimiter, createRedisBackend, getDefaultMaxWaitMS, DEFAULT_RATIO_ADJUSTMENT_CONFIG } = require('./jobs/index.js')
const { ProviderLimiter } = require('./provider-limiter')
const { Guard, Decision } = require('./guard')
const { Quota, QuotaManager, cooldownMs, dailyCap, tokenWaitMs, WINDOW_MS, BUFFER_MS, THRESHOLD_PCT } = require('./quota')

module.exports = {
  Guard,
  Decision,
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
  catalogModels,
  definePrice,
  costOf,
  estimateCost,
  usageFrom,
  streamUsage,
  StreamUsage,
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
}
