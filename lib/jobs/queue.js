'use strict'
// A model's queue: the jobs waiting for room on one model, served first in, first out. A
// waiter leaves when it is granted, when it can never fit the model, when its maxWaitMS runs
// out (the job then tries the next model), or when the limiter stops. The queue is drained
// when room may have appeared (a release, a ratio or allocation change: `wake()`) and at the
// time the backend said room comes back (a window reset, or Redis's poll interval). It owns the
// timers of its waiters and of its wake-up; stop() clears them all.
//
// One drain loop serves both backends: it runs synchronously while the grant function answers
// at once (in-process limits), and continues asynchronously from the waiter it was at when an
// answer is a promise (Redis). A waiter held back only by its own job type or memory is
// skipped (it cannot run, and must not block other types); a refusal by the model itself
// blocks the queue until the wake-up, so no later job overtakes the head.

const { fromNative } = require('../errors')
const { MAX_TIMER_MS } = require('./config')

class ModelQueue {
  #waiters = []
  #draining = false
  /** A drain was asked for while one ran: drain again when it ends. */
  #again = false
  /** The wake-up and when it fires. */
  #timer = null
  #timerAt = Infinity
  /** The model refused the head: new jobs queue behind it rather than ask first. */
  #blocked = false
  #timers = new Set()
  #grant
  #giveBack
  #wakeDelay

  /**
   * @param grant (job) => a decision, or a promise of one: `{grant, …}`, `{never: true}`,
   *   `{held: true}` (its job type or memory is full here), or `{retryInMs}` (the model refuses)
   * @param giveBack (grant, job) => Promise: releases a grant its waiter no longer wants
   * @param wakeDelay (retryInMs) => ms until the next try, or < 0 to wait for a wake()
   */
  constructor(grant, giveBack, wakeDelay) {
    this.#grant = grant
    this.#giveBack = giveBack
    this.#wakeDelay = wakeDelay
  }

  get blocked() {
    return this.#blocked
  }

  get waiting() {
    return this.#waiters.length
  }

  /**
   * Queues `job` for up to `maxWait` ms: resolves its grant, or null when it timed out or can
   * never fit. `denial` is why it could not start at once (null when it did not ask).
   */
  wait(job, maxWait, denial) {
    return new Promise((resolve, reject) => {
      const w = {
        job,
        done: false,
        timer: null,
        finish: (r) => {
          if (w.done) return
          w.done = true
          this.#clearTimer(w.timer)
          if (r instanceof Error) reject(r)
          else resolve(r)
        },
      }
      w.timer = this.#setTimer(() => {
        const i = this.#waiters.indexOf(w)
        if (i >= 0) this.#waiters.splice(i, 1)
        if (this.#waiters.length === 0) this.#idle()
        w.finish(null)
      }, maxWait)
      this.#waiters.push(w)
      if (denial !== null && denial.held !== true) {
        this.#blocked = true
        this.#schedule(denial.retryInMs)
      } else this.drain()
    })
  }

  /** Drains the queue if anyone waits (room may have appeared). */
  wake() {
    if (this.#waiters.length) this.drain()
  }

  /** Clears every timer and fails every waiter with `error()` (one error each). */
  stop(error) {
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    this.#timer = null
    this.#timerAt = Infinity
    for (const w of this.#waiters.splice(0)) w.finish(error())
  }

  // ---- the drain loop

  /** Serves the queue head first; a waiter held back only by its own job type or memory is skipped. */
  drain() {
    if (this.#draining) {
      this.#again = true
      return
    }
    this.#draining = true
    let rest
    try {
      rest = this.#pass(0)
    } catch (e) {
      this.#draining = false
      throw e
    }
    if (rest === undefined) this.#drained()
    else {
      rest
        .catch((e) => {
          // The store failed: every waiter of this model fails with its error.
          const err = fromNative(e)
          for (const w of this.#waiters.splice(0)) w.finish(err)
          this.#blocked = false
        })
        .finally(() => this.#drained())
    }
  }

  /**
   * Tries the waiters from index `i` on: undefined when the pass ended synchronously, else a
   * promise of its end (from the first answer that had to be awaited).
   */
  #pass(i) {
    const waiters = this.#waiters
    while (i < waiters.length) {
      const w = waiters[i]
      const r = this.#grant(w.job)
      if (r instanceof Promise) return r.then((d) => this.#resume(w, i, d))
      const step = this.#decide(i, r)
      if (step < 0) return this.#passed(true)
      i += step
    }
    return this.#passed(false)
  }

  /** Applies an awaited answer `d` for waiter `w` (at `i` when asked), then goes on. */
  async #resume(w, i, d) {
    if (w.done) {
      // timed out meanwhile: hand the grant back
      if (d.grant !== undefined) await this.#giveBack(d, w.job)
      const k = this.#waiters.indexOf(w)
      if (k >= 0) this.#waiters.splice(k, 1)
      return this.#pass(i)
    }
    // The queue may have changed while the answer came.
    const step = this.#decide(this.#waiters.indexOf(w), d)
    return step < 0 ? this.#passed(true) : this.#pass(i + step)
  }

  /** The end of a pass; another one when a drain was asked for meanwhile and no wake-up is due. */
  #passed(blocked) {
    this.#blocked = blocked
    if (this.#waiters.length === 0) this.#idle()
    if (this.#again && this.#waiters.length && !this.#timer) {
      this.#again = false
      return this.#pass(0)
    }
    return undefined
  }

  #drained() {
    this.#draining = false
    if (this.#again) {
      this.#again = false
      if (this.#waiters.length) this.drain()
    }
  }

  /**
   * Applies decision `r` to the waiter at `k`: 0 when it left the queue (granted, or it can
   * never fit), 1 when it stays for a slot of its own type (look at the next one), -1 when the
   * model is blocked until `r.retryInMs` (a wake-up is scheduled).
   */
  #decide(k, r) {
    if (r.grant !== undefined || r.never) {
      const [w] = this.#waiters.splice(k, 1)
      w.finish(r.never ? null : r)
      return 0
    }
    if (r.held) return 1
    this.#schedule(r.retryInMs)
    return -1
  }

  // ---- wake-ups and timers

  /** Wakes the queue in the backend's delay for `retryInMs` (an earlier wake-up stands). */
  #schedule(retryInMs) {
    const delay = this.#wakeDelay(retryInMs)
    if (delay < 0) return // a release wakes the queue
    const at = Date.now() + delay
    if (this.#timer && this.#timerAt <= at) return
    this.#clearTimer(this.#timer)
    this.#timerAt = at
    this.#timer = this.#setTimer(() => {
      this.#timer = null
      this.#timerAt = Infinity
      this.drain()
    }, delay)
  }

  /** A queue with no waiters: nothing blocks it and no wake-up is pending. */
  #idle() {
    this.#blocked = false
    this.#clearTimer(this.#timer)
    this.#timer = null
    this.#timerAt = Infinity
  }

  /**
   * A timer of a waiting job (its maxWaitMS, or the queue's wake-up). It keeps the process
   * alive, as the awaited job does: it is bounded by maxWaitMS, cleared when the wait ends and
   * by stop(). (The limiter's interval timers are unref'd instead.)
   */
  #setTimer(fn, ms) {
    const t = setTimeout(() => {
      this.#timers.delete(t)
      fn()
    }, Math.max(0, Math.min(MAX_TIMER_MS, ms)))
    this.#timers.add(t)
    return t
  }

  #clearTimer(t) {
    if (t) {
      clearTimeout(t)
      this.#timers.delete(t)
    }
  }
}

module.exports = { ModelQueue }
