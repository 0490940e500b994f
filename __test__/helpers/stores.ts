// One suite, every store: `forEachStore` runs a describe block against a MemoryStore and a
// RedisStore on the harness's redis-server, each with an injected clock.
import { randomUUID } from 'node:crypto'
import { afterAll, describe, inject } from 'vitest'
import { MemoryStore, RedisStore } from '../../lib/index.js'

export class Clock {
  constructor(public t = 1_700_000_000_000) {}
  now = () => this.t
  advance(ms: number) {
    this.t += ms
  }
}

export interface StoreCase {
  kind: 'memory' | 'redis'
  /** A new store reading `clock`. */
  store(clock: Clock): MemoryStore | RedisStore
  /** A prefix no other test uses, so tests sharing one Redis never meet. */
  prefix(name: string): string
}

export function redisUrl(): string {
  return inject('redisUrl')
}

export function forEachStore(title: string, body: (c: StoreCase) => void) {
  describe.each(['memory', 'redis'] as const)(`${title} [%s]`, (kind) => {
    const opened: RedisStore[] = []
    afterAll(async () => {
      await Promise.all(opened.map((s) => s.close()))
    })
    body({
      kind,
      store(clock) {
        if (kind === 'memory') return new MemoryStore({ now: clock.now })
        const s = new RedisStore(redisUrl(), { now: clock.now })
        opened.push(s)
        return s
      },
      prefix(name) {
        return `t:${name}:${randomUUID().slice(0, 8)}:`
      },
    })
  })
}
