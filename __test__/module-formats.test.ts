import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = path.join(__dirname, '..')

describe('module formats', () => {
  it('import (ESM) and require (CommonJS) give the same classes', async () => {
    const code = `
      import tollgate, { RateLimiter, MemoryStore, codes } from 'tollgate'
      import { createRequire } from 'node:module'
      const cjs = createRequire(import.meta.url)('tollgate')
      const rl = new RateLimiter(new MemoryStore(), { maxRequests: 1 })
      const r = await rl.consume('x')
      console.log(JSON.stringify({ same: cjs.RateLimiter === RateLimiter && tollgate.MemoryStore === MemoryStore, r, code: codes.INVALID_ARG }))
    `
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: root, timeout: 10_000 })
    expect(JSON.parse(stdout)).toEqual({ same: true, r: { allowed: true, remaining: 0, resetInSeconds: 60 }, code: 'ERR_TOLLGATE_INVALID_ARG' })
  })

  it('the ESM entry names every CommonJS export (ESM named exports must be listed by hand)', async () => {
    const code = `
      import * as esm from 'tollgate'
      import { createRequire } from 'node:module'
      const cjs = createRequire(import.meta.url)('tollgate')
      const named = Object.keys(esm).filter((k) => k !== 'default')
      console.log(JSON.stringify({ named: named.sort(), cjs: Object.keys(cjs).sort(), same: named.every((k) => esm[k] === cjs[k]) }))
    `
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: root, timeout: 10_000 })
    const { named, cjs, same } = JSON.parse(stdout)
    expect(named).toEqual(cjs)
    expect(named.length).toBeGreaterThan(30)
    expect(same).toBe(true)
  })
})
