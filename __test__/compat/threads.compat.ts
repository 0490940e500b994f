// tollgate under vitest's `threads` pool (worker_threads), run by __test__/compat.test.ts.
import { expect, it } from 'vitest'
import { run } from './body.cjs'

it('tollgate works in a vitest worker thread', async () => {
  expect(await run(process.env.REDIS_URL)).toEqual(['memory limiter', 'errors', 'tokens', 'redis'])
})
