// tollgate loaded and used inside a worker_threads Worker (the addon loads once per thread);
// prints what the worker checked, and the process exits on its own.
import { Worker, isMainThread, parentPort } from 'node:worker_threads'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

if (isMainThread) {
  const results = await Promise.all(
    [1, 2].map(
      () =>
        new Promise((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { env: process.env })
          w.once('message', resolve)
          w.once('error', reject)
        }),
    ),
  )
  // …and on the main thread too, after the workers.
  const main = await require('./body.cjs').run(process.env.REDIS_URL)
  process.stdout.write(JSON.stringify({ workers: results, main }))
} else {
  const checked = await require('./body.cjs').run(process.env.REDIS_URL)
  parentPort.postMessage(checked)
}
