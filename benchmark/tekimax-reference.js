'use strict'
// A JavaScript reference of tekimax's RateLimiter command sequence over ioredis, written for
// this benchmark from its documented behaviour (tekimax's RateLimiter): `check`
// sends GET then TTL; `record` sends INCR, EXPIRE when the count is 1, then TTL. Each command
// waits for the previous one. A request that is checked and then recorded costs 4–5 round
// trips, and two callers can both pass `check` before either records.

class TekimaxRateLimiter {
  constructor(redis, { maxRequests, windowSeconds = 60, prefix = 'tekimax:ratelimit:' }) {
    this.redis = redis
    this.maxRequests = maxRequests
    this.windowSeconds = windowSeconds
    this.prefix = prefix
  }

  async check(provider) {
    const key = this.prefix + provider
    const count = parseInt((await this.redis.get(key)) ?? '0', 10)
    const ttl = await this.redis.ttl(key)
    return {
      allowed: count < this.maxRequests,
      remaining: Math.max(0, this.maxRequests - count),
      resetInSeconds: ttl > 0 ? ttl : this.windowSeconds,
    }
  }

  async record(provider) {
    const key = this.prefix + provider
    const count = await this.redis.incr(key)
    if (count === 1) await this.redis.expire(key, this.windowSeconds)
    const ttl = await this.redis.ttl(key)
    return {
      allowed: count <= this.maxRequests,
      remaining: Math.max(0, this.maxRequests - count),
      resetInSeconds: ttl > 0 ? ttl : this.windowSeconds,
    }
  }
}

module.exports = { TekimaxRateLimiter }
