// The install step (scripts/build-native.js): skips an up-to-date build, and without cargo
// fails with a message that says what to do.
import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const script = path.join(__dirname, '..', 'scripts', 'build-native.js')

describe('npm install step', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-install-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(path.join(dir, 'scripts'))
  mkdirSync(path.join(dir, 'src'))
  writeFileSync(path.join(dir, 'src', 'lib.rs'), '')
  writeFileSync(path.join(dir, 'Cargo.toml'), '')
  copyFileSync(script, path.join(dir, 'scripts', 'build-native.js'))
  const env = { ...process.env, PATH: path.join(dir, 'no-such-bin'), TOLLGATE_SKIP_BUILD: '' }

  it('explains how to get cargo when it is missing', async () => {
    const err: any = await run(process.execPath, [path.join(dir, 'scripts', 'build-native.js')], { env }).catch((e) => e)
    expect(err.code).toBe(1)
    expect(err.stderr).toContain('`cargo` was not found')
    expect(err.stderr).toContain('https://rustup.rs')
  })

  it('does nothing when the built addon is newer than the sources', async () => {
    const binary = path.join(dir, `tollgate.${process.platform}-${process.arch}-gnu.node`)
    writeFileSync(binary, '')
    const { stdout } = await run(process.execPath, [path.join(dir, 'scripts', 'build-native.js')], { env })
    expect(stdout).toContain('up to date')
  })
})
