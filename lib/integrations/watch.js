'use strict'
// One stream watcher for the integrations (the AI SDK middleware's model streams, the hono
// middleware's response bodies): passes a ReadableStream through unchanged and calls
// `end(reason)` exactly once, when the stream has been read to its end ('done'), failed
// ('error') or been cancelled by its reader ('cancel'). `onChunk(value)` sees each chunk first.

/**
 * @param {ReadableStream} stream
 * @param {(reason: 'done' | 'error' | 'cancel') => unknown} end may return a promise, awaited
 *   before the stream closes, errors or finishes cancelling.
 * @param {((value: unknown) => void) | null} [onChunk]
 */
function watchStream(stream, end, onChunk = null) {
  const reader = stream.getReader()
  let ended = false
  const once = (reason) => {
    if (ended) return undefined
    ended = true
    return end(reason)
  }
  return new ReadableStream({
    async pull(controller) {
      let next
      try {
        next = await reader.read()
      } catch (e) {
        await once('error')
        controller.error(e)
        return
      }
      if (next.done) {
        await once('done')
        controller.close()
        return
      }
      if (onChunk !== null) onChunk(next.value)
      controller.enqueue(next.value)
    },
    async cancel(reason) {
      await once('cancel')
      await reader.cancel(reason)
    },
  })
}

module.exports = { watchStream }
