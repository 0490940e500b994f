// tollgate inside jest's sandbox (its own realm per file); two files run in two workers.
const { run } = require('./body.cjs')

test('tollgate works under jest', async () => {
  expect(await run(process.env.REDIS_URL)).toEqual(['memory limiter', 'errors', 'tokens', 'redis'])
})
