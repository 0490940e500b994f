// tollgate under plain `node --test`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import body from './body.cjs'

test('tollgate works under node:test', async () => {
  const checked = await body.run(process.env.REDIS_URL)
  assert.deepEqual(checked, ['memory limiter', 'errors', 'tokens', 'redis'])
})
