// The differential harness: one random sequence of operations, drawn from a seed, runs on a
// class over a MemoryStore (the Rust engine) and on its twin over a real Redis or a 3-master
// Cluster (the Lua script), both reading one injected clock. Every answer must be the same,
// and so must what the class shows at the end. A failing sequence names its seed and the
// command that replays it alone: `DIFF_SEED=<seed> npx vitest run <file>`.
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { MemoryStore, RedisStore } from '../../lib/index.js'
import { clusterUrls, redisUrl } from '../helpers/stores.js'

export type Target = 'redis' | 'cluster'

/** A seeded source of choices: every choice a sequence makes comes from here. */
import { rng, type Rng } from '../helpers/prng.js'
export { rng, type Rng }

/**
 * The simulated clock both stores read. Starts two minutes before a UTC midnight (and a month's
 * end). Redis drops keys by its own real clock, which cannot follow a simulated one: a script
 * given `now` sets a key's real time to live to what is left of it on the simulated clock,
 * while a MemoryStore reclaims keys by the simulated clock itself. Two moves would let that
 * show, and the clock does not take them (a skipped move depends only on the sequence, so a
 * seed still replays exactly):
 * - stepping back across a time at which a key may have come due: gone from memory, still in
 *   Redis;
 * - landing less than `MARGIN_MS` before such a time: a key written then lives that little in
 *   real time, and may be gone from Redis by the next call at the same simulated time.
 * Every key of a class lives until some call's time plus one of its `lifetimes` (or until one
 * of its `boundaries`, such as a day's end).
 */
export class SimClock {
  static readonly MARGIN_MS = 1_000
  t = Date.UTC(2026, 0, 31, 23, 58)
  now = () => this.t
  /** How long after a call the keys it wrote may live (ms): the class's windows, TTLs, periods. */
  lifetimes: number[] = []
  /** Whether a time at which the class's keys may come due lies in (from, to]: day ends, … */
  boundaries: (from: number, to: number) => boolean = () => false
  #calls = new Set<number>()
  #latest = this.t

  /** Notes that a call runs at the current time. */
  call() {
    this.#calls.add(this.t)
    this.#latest = Math.max(this.#latest, this.t)
  }

  /** Whether a key may come due in (from, to]. */
  #due(from: number, to: number) {
    if (to <= from) return false
    if (this.boundaries(from, to)) return true
    for (const at of this.#calls) {
      for (const life of this.lifetimes) {
        const due = at + life
        if (due > from && due <= to) return true
      }
    }
    return false
  }

  /** Moves by `ms`, unless the move is one of the two above. */
  jump(ms: number) {
    const to = this.t + ms
    if (ms < 0 && this.#due(to, this.#latest)) return
    if (this.#due(to, to + SimClock.MARGIN_MS - 1)) return
    this.t = to
  }
}

/** Clock jumps: none, a millisecond, a second's and a minute's edges, an hour, a day, and back. */
export const JUMPS = [0, 1, 999, 1_000, 1_001, 2_999, 30_000, 59_999, 60_000, 60_001, 3_600_000, 86_400_000, -1, -1_000, -60_000] as const

/**
 * Runs `n` steps, each of a kind drawn from `kinds` (a kind listed twice is drawn twice as
 * often): `'jump'` moves the clock by one of `jumps`, any other kind is `step`'s to run; `at`
 * is its time since the first step, for the labels (`'@60000'`).
 */
export async function steps<K extends string>(
  r: Rng,
  clock: SimClock,
  n: number,
  kinds: readonly (K | 'jump')[],
  step: (kind: K, at: string) => Promise<void>,
  jumps: readonly number[] = JUMPS,
) {
  const t0 = clock.t
  for (let i = 0; i < n; i++) {
    const kind = r.pick(kinds)
    if (kind === 'jump') clock.jump(r.pick(jumps))
    else await step(kind as K, `@${clock.t - t0}`)
  }
}

/** The outcome of one call, comparable across stores: its value, or its error's name and code. */
export async function outcome(clock: SimClock, f: () => unknown): Promise<unknown> {
  clock.call()
  try {
    return { ok: await f() }
  } catch (e) {
    const err = e as { name?: string; code?: string; message?: string }
    return { threw: err.name, code: err.code ?? null, message: err.message }
  }
}

/** The class counters that must match across stores (the store-specific ones cannot). */
export function sharedStats(s: { decisions: number; refused: Record<string, number>; errors: Record<string, number> }) {
  return { decisions: s.decisions, refused: s.refused, errors: s.errors }
}

export interface Twins {
  /** A MemoryStore on the clock. */
  memory: MemoryStore
  /** A RedisStore (single server or Cluster) on the same clock. */
  redis: RedisStore
  /** A key prefix of this sequence alone, without braces: each class lays out its own Cluster slots. */
  prefix: string
}

/**
 * One sequence's body: draws its options and steps from `r`, runs each step on the class over
 * `stores.memory` and over `stores.redis`, and hands both answers to `check` (then, at the end,
 * the observable state of each). `note` records the drawn options for the failure message.
 */
export type Sequence = (ctx: { r: Rng; clock: SimClock; stores: Twins; seed: number; target: Target; check: Check; note: (what: unknown) => void }) => Promise<void>
export type Check = (label: string, memory: unknown, redis: unknown) => void

class Disagreement extends Error {}

/**
 * Registers the differential suite of one class: `count` seeds on one redis-server and
 * `clusterCount` on the Cluster (`DIFF_SEED` runs only that seed, on both; `DIFF_COUNT` sets
 * how many).
 */
export function differential(name: string, file: string, opts: { base: number; count?: number; clusterCount?: number; timeoutMs?: number }, run: Sequence) {
  const only = process.env.DIFF_SEED
  const replay = (seed: number) => `DIFF_SEED=${seed} npx vitest run ${path.relative(process.cwd(), file)}`
  describe.each(['redis', 'cluster'] as const)(`${name}: MemoryStore and %s answer alike`, (target) => {
    // DIFF_COUNT=<n> runs n seeds on each target instead (a longer soak).
    const n = Number(process.env.DIFF_COUNT) || (target === 'redis' ? (opts.count ?? 30) : (opts.clusterCount ?? 5))
    const seeds = only ? [Number(only)] : Array.from({ length: n }, (_, i) => opts.base + i)
    it(`on ${seeds.length} random sequences of every operation, with clock jumps`, async () => {
      for (const seed of seeds) {
        const clock = new SimClock()
        const memory = new MemoryStore({ now: clock.now })
        const redis =
          target === 'redis'
            ? new RedisStore(redisUrl(), { now: clock.now })
            : new RedisStore({ cluster: clusterUrls(), now: clock.now, commandTimeoutMs: 5_000 })
        const labels: string[] = []
        const notes: string[] = []
        const note = (what: unknown) => void notes.push(JSON.stringify(what))
        const check: Check = (label, a, b) => {
          labels.push(label)
          try {
            expect(b).toEqual(a)
          } catch {
            throw new Disagreement(
              `${name}, seed ${seed} on ${target}, step ${labels.length} (${label}): memory ${JSON.stringify(a)} vs ${target} ${JSON.stringify(b)}\n` +
                `setup: ${notes.join(' ')}\nsteps: ${labels.join(' ')}\nreplay: ${replay(seed)}`,
            )
          }
        }
        try {
          await run({ r: rng(seed), clock, stores: { memory, redis, prefix: `t:diff:${name}:${seed}:${Date.now().toString(36)}:` }, seed, target, check, note })
        } catch (e) {
          if (e instanceof Disagreement) expect.fail(e.message)
          throw new Error(`${name}, seed ${seed} on ${target} threw (replay: ${replay(seed)})`, { cause: e })
        } finally {
          await redis.close()
        }
      }
    }, opts.timeoutMs ?? 60_000)
  })
}
