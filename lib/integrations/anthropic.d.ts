// tollgate/anthropic: an `@anthropic-ai/sdk` client guarded by a tollgate Guard. Reference: docs/anthropic.md.
import type { Guard } from '../index'
import type { GuardClientOptions, Guarded } from './sdk'

export type { GuardClientOptions, Guarded, GuardedClientInfo, GuardedClientStats, GuardedCallRefused } from './sdk'

/** The `@anthropic-ai/sdk` major versions supported (a client of another is refused at wrap time). */
export declare const SUPPORTED_ANTHROPIC_VERSIONS: readonly number[]

/**
 * `client` with `messages.create` (streamed or not) and `messages.stream` going through
 * `guard`: one decision before the request (estimated from the model, the system prompt and
 * messages, and `max_tokens`), one settlement with the usage of the message — or of the stream
 * (`message_start` + `message_delta`) when it ends, is aborted or fails; cache reads and writes
 * are priced at their rates. A refused call rejects with `ERR_TOLLGATE_LIMITED` (from
 * `messages.stream`, as the `cause` of the SDK's error) and is never sent; a routed key is sent
 * as `x-api-key`. Every other method is the client's own, unguarded.
 *
 * @example
 * const claude = guardAnthropic(new Anthropic(), guard)
 * const msg = await claude.withContext({ user: 'u1' }).messages.create({ model: 'claude-sonnet-4-5', max_tokens: 300, messages })
 */
export declare function guardAnthropic<C extends object, Ctx = any>(client: C, guard: Guard<Ctx>, options?: GuardClientOptions<Ctx>): Guarded<C, Ctx>
