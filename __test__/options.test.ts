// A misspelt option is refused, naming the option it most likely meant: left alone, it would
// leave its default in force (`maxRequest: 5` limited to 60 a minute, `periodSecond: 60` to a
// day), a limit the user believes is set and is not.
import { describe, expect, it } from 'vitest'
import { CostTracker, Guard, MemoryStore, ProviderLimiter, Quota, RateLimiter, ResponseCache, SemanticCache, SessionStore, TokenBudget } from '../lib/index.js'

const store = new MemoryStore()
const cases: Array<[string, () => unknown, string, string]> = [
  ['RateLimiter', () => new RateLimiter(store, { maxRequest: 5, windowSeconds: 10 } as any), 'options.maxRequest', 'maxRequests'],
  ['RateLimiter', () => new RateLimiter(store, { maxRequests: 5, windowSecond: 10 } as any), 'options.windowSecond', 'windowSeconds'],
  ['TokenBudget', () => new TokenBudget(store, { maxTokens: 100, periodSecond: 60 } as any), 'options.periodSecond', 'periodSeconds'],
  ['ResponseCache', () => new ResponseCache(store, { ttlSeconds: 60 } as any), 'options.ttlSeconds', 'ttl'],
  ['SessionStore', () => new SessionStore(store, { maxByte: 10 } as any), 'options.maxByte', 'maxBytes'],
  ['CostTracker', () => new CostTracker(store, { dailyBudgetUsd: 5 } as any), 'options.dailyBudgetUsd', 'dailyBudget'],
  ['SemanticCache', () => new SemanticCache(store, { embed: () => [1], treshold: 0.9 } as any), 'options.treshold', 'threshold'],
  ['ProviderLimiter', () => new ProviderLimiter(store, { providers: { openai: { point: 5, duration: 60 } } } as any), 'options.providers.openai.point', 'points'],
  ['ProviderLimiter', () => new ProviderLimiter(store, { provider: {} } as any), 'options.provider', 'providers'],
  ['Quota', () => new Quota({ windowMS: 60_000 } as any), 'options.windowMS', 'windowMs'],
  ['Quota', () => new Quota(store, { rpmWindows: true } as any), 'options.rpmWindows', 'rpmWindow'],
  ['Guard', () => new Guard({ store, limit: [] } as any), 'options.limit', 'limits'],
  ['Guard', () => new Guard({ store, limits: [{ id: 'x', scope: 'a', request: 5, per: '1m' }] } as any), 'options.limits[0].request', 'requests'],
]

describe('a misspelt option is refused with the closest name', () => {
  it.each(cases)('%s: %s', (_cls, make, option, suggestion) => {
    let error: any
    try {
      make()
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({ code: 'ERR_TOLLGATE_UNKNOWN_OPTION', suggestion })
    expect(error.message).toContain(`${option} is not an option; did you mean`)
  })

  it('the failure-policy options are known to every class', () => {
    expect(() => new RateLimiter(store, { maxRequests: 5, windowSeconds: 10, onStoreError: 'local', storeRetryMs: 1_000 })).not.toThrow()
    expect(() => new Quota(store, { onStoreError: 'fail-open' })).not.toThrow()
  })
})
