// Internal: lib/provider-headers.js (rateLimitsFrom is public through lib/index.d.ts).
import type { ProviderRateLimits } from './index'

export { rateLimitsFrom } from './index'
/** Until when `limits` say a key is exhausted after an answer of `status`, or 0. */
export declare function exhaustedUntil(limits: ProviderRateLimits, status: number | undefined, now: number): number
/** What the SDK wrappers read of an answer's headers: until when the key is exhausted (0: not), and the malformed headers. */
export declare function feedbackFrom(headers: unknown, status: number | undefined, now: number, provider: 'openai' | 'anthropic'): { until: number; ignored: number }
/** Milliseconds in an OpenAI reset duration (`6m0s`, `20ms`), or NaN. */
export declare function durationMs(text: string): number
