'use strict'
// What every class over a store sets up the same way, written once:
//
// - `setUp`: the store and the options (store-first `new X(store, options)` or options-only
//   `new X(options)` on the default MemoryStore), unknown option keys refused with the closest
//   known name (a misspelt option would otherwise leave its default in force unseen), the
//   store's native handle and clock, and the counters behind `stats()` and `metrics()`.
// - `storePolicy`: on Redis, what the class does when Redis cannot answer (`onStoreError`, see
//   policy.js): its in-process twin (the same class with the same options on a private
//   MemoryStore on the store's clock) and the replay of what was counted meanwhile; and the
//   class's counters registered for `metrics()`.

const { storeAndOptions, MemoryStore, kNative, kClock, kPolicy } = require('./stores')
const { kLocalTwin, fallbackOptions, StoreFallback, newStats, track, POLICY_OPTIONS } = require('./policy')
const v = require('./validate')

/**
 * @param name the class's name (in errors and metrics)
 * @param store the constructor's first argument
 * @param options its second
 * @param known the class's own option names (the failure-policy options are added)
 * @returns {{store, options, native, memory: boolean, clock, stats}}
 */
function setUp(name, store, options, known) {
  const [s, o] = storeAndOptions(store, options, name)
  v.knownKeys(o, [...known, ...POLICY_OPTIONS], 'options')
  const ns = s[kNative]
  return { store: s, options: o, native: ns, memory: ns.isMemory, clock: s[kClock], stats: newStats() }
}

/**
 * The failure policy of a class on Redis (`fallback` is null on a MemoryStore, where nothing
 * can fail) and the class's counters registered for `metrics()` under `prefix`. The policy
 * options are validated on every store.
 *
 * @param name the class's name
 * @param prefix what `metrics()` labels the counters with
 * @param c what `setUp` returned (`store`, `options`, `memory`, `clock`, `stats`)
 * @param twin `(store, mark) => instance`: the same class with the same options on `store`;
 *   `mark` goes into its options (the twin's counters are not registered)
 * @param replay `(op) => Promise`: sends one count made during an outage to Redis (default:
 *   nothing is replayed)
 * @returns {{fallback: StoreFallback | null, policy: string}}
 */
function storePolicy(name, prefix, c, { twin, replay = () => Promise.resolve(), clock = c.clock }) {
  const { policy, retryMs } = fallbackOptions(c.options, c.store[kPolicy])
  let fallback = null
  if (!c.memory) {
    const local = () => twin(new MemoryStore({ now: clock || undefined }), { [kLocalTwin]: true })
    fallback = new StoreFallback(policy, local, replay, c.stats, retryMs)
  }
  if (!c.options[kLocalTwin]) track(name, prefix, c.stats)
  return { fallback, policy }
}

module.exports = { setUp, storePolicy }
