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
  kind: 'memory' | 'redis' | 'cluster'
  /** A new store reading `clock`. */
  store(clock: Clock): MemoryStore | RedisStore
  /** A prefix no other test uses, so tests sharing one Redis never meet. */
  prefix(name: string): string
}

export function redisUrl(): string {
  return inject('redisUrl')
}

export function clusterUrls(): string[] {
  return inject('clusterUrls')
}

/** Every suite runs on the embedded store, one redis-server, and a 3-master Redis Cluster. */
export function forEachStore(title: string, body: (c: StoreCase) => void) {
  describe.each(['memory', 'redis', 'cluster'] as const)(`${title} [%s]`, (kind) => {
    const opened: RedisStore[] = []
    afterAll(async () => {
      await Promise.all(opened.map((s) => s.close()))
    })
    body({
      kind,
      store(clock) {
        if (kind === 'memory') return new MemoryStore({ now: clock.now })
        // On the Cluster a cold node may take a moment (and the suites run beside process-heavy
        // ones): a generous command timeout, since this is about behaviour, not timeouts.
        const s = kind === 'redis' ? new RedisStore(redisUrl(), { now: clock.now }) : new RedisStore({ cluster: clusterUrls(), now: clock.now, commandTimeoutMs: 5_000 })
        opened.push(s)
        return s
      },
      prefix(name) {
        return `t:${name}:${randomUUID().slice(0, 8)}:`
      },
    })
  })
}
