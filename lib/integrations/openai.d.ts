// tollgate/openai: an `openai` client guarded by a tollgate Guard. Reference: docs/openai.md.
import type { Guard } from '../index'
import type { GuardClientOptions, Guarded } from './sdk'

export type { GuardClientOptions, Guarded, GuardedClientInfo, GuardedClientStats, GuardedCallRefused } from './sdk'

/** The `openai` major versions supported (a client of another is refused at wrap time). */
export declare const SUPPORTED_OPENAI_VERSIONS: readonly number[]

/**
 * `client` with `chat.completions.create`, `responses.create` and `embeddings.create` going
 * through `guard`: one decision before the request (estimated from the model, the messages or
 * input and `max_tokens` / `max_completion_tokens` / `max_output_tokens`), then one settlement
 * with the usage of the answer — or of the stream when it ends, is aborted or fails (a chat
 * stream asks for its usage chunk when the caller did not). A refused call rejects with
 * `ERR_TOLLGATE_LIMITED` and is never sent; a cached answer comes back in the SDK's shape; a
 * routed key (guard `routing`) is sent as `Authorization: Bearer <key.apiKey>`. Every other
 * method is the client's own, unguarded.
 *
 * @example
 * const ai = guardOpenAI(new OpenAI(), guard)
 * const completion = await ai.withContext({ user: 'u1' }).chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 300 })
 */
export declare function guardOpenAI<C extends object, Ctx = any>(client: C, guard: Guard<Ctx>, options?: GuardClientOptions<Ctx>): Guarded<C, Ctx>
