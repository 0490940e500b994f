// Installing tollgate as a user does: the packed main package and the linux-x64-gnu platform
// package (napi-rs's layout) into a fresh project, with no cargo, no compiler and no registry;
// the same without the platform package; the install step in a checkout; and the release
// workflow that builds every platform package.
import { execFile } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'

const run = promisify(execFile)
const root = path.join(__dirname, '..')
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
const platform = 'linux-x64-gnu'
const binary = path.join(root, `tollgate.${platform}.node`)
const napi = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
/** A stack frame as Node prints it. */
const STACK_FRAME = /^\s+at .*:\d+:\d+\)?$/m

describe('installing the packed packages', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-pack-'))
  const shims = path.join(work, 'shims')
  const compilerLog = path.join(work, 'compilers.log')
  let mainTgz = ''
  let platformTgz = ''
  afterAll(() => rmSync(work, { recursive: true, force: true }))

  // What a user's machine has here: node and npm, no cargo; any compiler is a shim that logs.
  const env: NodeJS.ProcessEnv = {
    PATH: [shims, path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
    HOME: work,
    npm_config_cache: path.join(work, 'npm-cache'), // empty: nothing can come from a cache
    npm_config_registry: 'http://127.0.0.1:9/', // and nothing from a registry
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  }

  /** The release's layout, staged from `npm pack` of this checkout. */
  beforeAll(async () => {
    mkdirSync(shims)
    for (const tool of ['cc', 'gcc', 'c++', 'g++', 'clang', 'rustc', 'rustup', 'make', 'ld']) {
      const shim = path.join(shims, tool)
      writeFileSync(shim, `#!/bin/sh\necho "${tool} $*" >> '${compilerLog}'\nexit 127\n`)
      chmodSync(shim, 0o755)
    }
    const out = path.join(work, 'out')
    mkdirSync(out)
    await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: root })
    await run('tar', ['xzf', path.join(work, `tollgate-${pkg.version}.tgz`), '-C', work])
    const stage = path.join(work, 'package')
    // napi-rs's generator writes one package per target (os, cpu, libc, main)...
    await run(process.execPath, [napi, 'create-npm-dirs', '--cwd', stage])
    // ...the release's `napi artifacts` moves each build into its own (here: this machine's)...
    copyFileSync(binary, path.join(stage, 'npm', platform, path.basename(binary)))
    // ...and `napi prepublish` names them all as exact-version optionalDependencies (it refuses
    // to run without every target's binary, so this does the same edit).
    const staged = JSON.parse(readFileSync(path.join(stage, 'package.json'), 'utf8'))
    staged.optionalDependencies = Object.fromEntries(
      readdirSync(path.join(stage, 'npm')).map((p) => [`tollgate-${p}`, staged.version]),
    )
    writeFileSync(path.join(stage, 'package.json'), JSON.stringify(staged, null, 2))
    await run('npm', ['pack', '--ignore-scripts', '--pack-destination', out], { cwd: stage })
    await run('npm', ['pack', '--pack-destination', out], { cwd: path.join(stage, 'npm', platform) })
    mainTgz = path.join(out, `tollgate-${pkg.version}.tgz`)
    platformTgz = path.join(out, `tollgate-${platform}-${pkg.version}.tgz`)
  }, 120_000)

  /** A fresh project that lets tollgate's install script run (npm 11 asks for approval). */
  function project(name: string) {
    const dir = path.join(work, name)
    mkdirSync(dir)
    const manifest = { name, version: '1.0.0', private: true, allowScripts: { [`file:${mainTgz}`]: true } }
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest))
    return dir
  }

  it('has cargo out of reach', async () => {
    const which: any = await run('sh', ['-c', 'command -v cargo'], { env }).catch((e) => e)
    expect(which.code).toBeGreaterThan(0)
  })

  it('installs with the prebuilt addon: no compiler, no network, in seconds', async () => {
    const dir = project('app')
    const started = Date.now()
    const { stdout, stderr } = await run(
      'npm',
      ['install', '--foreground-scripts', mainTgz, platformTgz],
      { cwd: dir, env },
    )
    const seconds = (Date.now() - started) / 1000
    expect(`${stdout}${stderr}`).toContain(`tollgate: using the prebuilt addon (tollgate-${platform})`)
    expect(seconds).toBeLessThan(20)
    expect(existsSync(compilerLog)).toBe(false)
    const installed = path.join(dir, 'node_modules', 'tollgate')
    expect(existsSync(path.join(installed, 'target'))).toBe(false)
    expect(readdirSync(installed).filter((f) => f.endsWith('.node'))).toEqual([])
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8'))
    expect(manifest.dependencies).toBeUndefined()
    // One exact-version optional dependency per platform package...
    const platforms = ['darwin-arm64', 'darwin-x64', 'linux-arm64-gnu', 'linux-arm64-musl']
    platforms.push('linux-x64-gnu', 'linux-x64-musl', 'win32-x64-msvc')
    expect(Object.keys(manifest.optionalDependencies).sort()).toEqual(platforms.map((p) => `tollgate-${p}`))
    expect(new Set(Object.values(manifest.optionalDependencies))).toEqual(new Set([pkg.version]))
    // ...each saying which machines it is for, so npm installs only the matching one.
    const prebuiltPath = path.join(dir, 'node_modules', `tollgate-${platform}`, 'package.json')
    const prebuilt = JSON.parse(readFileSync(prebuiltPath, 'utf8'))
    expect([prebuilt.os, prebuilt.cpu, prebuilt.libc]).toEqual([['linux'], ['x64'], ['glibc']])
    expect(prebuilt.main).toBe(path.basename(binary))

    const use = `
      const store = new t.MemoryStore()
      const limiter = new t.RateLimiter(store, { maxRequests: 1, windowSeconds: 60 })
      const first = await limiter.consume('user')
      const second = await limiter.consume('user')
      console.log(JSON.stringify([first.allowed, second.allowed, t.countTokens('Hello, world!')]))`
    const cjs = await run(process.execPath, ['-e', `const t = require('tollgate');(async () => {${use}})()`], {
      cwd: dir,
      env,
    })
    expect(JSON.parse(cjs.stdout)).toEqual([true, false, 4])
    const esm = await run(
      process.execPath,
      ['--input-type=module', '-e', `import * as t from 'tollgate';${use}`],
      { cwd: dir, env },
    )
    expect(JSON.parse(esm.stdout)).toEqual([true, false, 4])
    expect(existsSync(compilerLog)).toBe(false)
  }, 60_000)

  it('without a platform package or cargo, fails naming the platform and the two ways out', async () => {
    const dir = project('unsupported')
    const err: any = await run('npm', ['install', '--foreground-scripts', mainTgz], { cwd: dir, env }).catch(
      (e) => e,
    )
    expect(err.code).not.toBe(0)
    const output = `${err.stdout}${err.stderr}`
    expect(output).toContain(`tollgate: cannot install on ${platform}`)
    expect(output).toContain('install on a supported platform: linux-x64-gnu, linux-arm64-gnu')
    expect(output).toContain('install a Rust toolchain (https://rustup.rs)')
    expect(output).not.toMatch(STACK_FRAME)
    expect(existsSync(compilerLog)).toBe(false)
  }, 60_000)

  it('where install scripts do not run, require() says the same', async () => {
    const dir = project('no-scripts')
    await run('npm', ['install', '--ignore-scripts', mainTgz], { cwd: dir, env })
    const err: any = await run(process.execPath, ['-e', "require('tollgate')"], { cwd: dir, env }).catch((e) => e)
    expect(err.code).toBe(1)
    expect(err.stderr).toContain(`tollgate: no native addon for this platform (${platform})`)
    expect(err.stderr).toContain('install on a supported platform: linux-x64-gnu')
    expect(err.stderr).toContain('install a Rust toolchain (https://rustup.rs)')
  }, 60_000)
})

describe('the install step in a checkout', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-install-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(path.join(dir, 'scripts'))
  mkdirSync(path.join(dir, 'lib'))
  mkdirSync(path.join(dir, 'src'))
  writeFileSync(path.join(dir, 'src', 'lib.rs'), '')
  writeFileSync(path.join(dir, 'Cargo.toml'), '')
  copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'))
  copyFileSync(path.join(root, 'scripts', 'build-native.js'), path.join(dir, 'scripts', 'build-native.js'))
  copyFileSync(path.join(root, 'lib', 'platform.js'), path.join(dir, 'lib', 'platform.js'))
  const script = path.join(dir, 'scripts', 'build-native.js')
  const env = { ...process.env, PATH: path.join(dir, 'no-such-bin'), TOLLGATE_SKIP_BUILD: '' }

  it('does nothing when the built addon is newer than the sources', async () => {
    writeFileSync(path.join(dir, `tollgate.${platform}.node`), '')
    const { stdout } = await run(process.execPath, [script], { env })
    expect(stdout).toContain('up to date')
  })

  it('builds from source when asked to, and says what it needs', async () => {
    const err: any = await run(process.execPath, [script], {
      env: { ...env, TOLLGATE_BUILD_FROM_SOURCE: '1' },
    }).catch((e) => e)
    expect(err.code).toBe(1)
    expect(err.stderr).toContain('a build from source was asked for')
    expect(err.stderr).toContain('`cargo` was not found')
    expect(err.stderr).not.toMatch(STACK_FRAME)
  })
})

describe('the release workflow', () => {
  const workflow = parse(readFileSync(path.join(root, '.github', 'workflows', 'release.yml'), 'utf8'))
  const targets: string[] = pkg.napi.targets

  it('builds and tests every target in napi.targets, and only those', () => {
    for (const job of ['build', 'test']) {
      const matrix = workflow.jobs[job].strategy.matrix.include.map((m: { target: string }) => m.target)
      expect([...matrix].sort(), job).toEqual([...targets].sort())
    }
    expect(targets).toEqual(
      expect.arrayContaining([
        'x86_64-unknown-linux-gnu',
        'aarch64-unknown-linux-gnu',
        'x86_64-unknown-linux-musl',
        'aarch64-unknown-linux-musl',
        'x86_64-apple-darwin',
        'aarch64-apple-darwin',
        'x86_64-pc-windows-msvc',
      ]),
    )
  })

  it('publishes the napi-rs way: artifacts, prepublish, then the main package', () => {
    expect(workflow.on.push.tags).toEqual(['v*'])
    expect(workflow.jobs.test.needs).toBe('build')
    expect(workflow.jobs.publish.needs).toBe('test')
    const runs: string[] = workflow.jobs.publish.steps.filter((s: any) => s.run).map((s: any) => s.run)
    const order = ['napi create-npm-dirs', 'napi artifacts', 'napi prepublish -t npm', 'npm publish']
    const at = order.map((cmd) => runs.findIndex((r) => r.includes(cmd)))
    expect(at.every((i) => i >= 0), JSON.stringify(runs)).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)
    const build: string = workflow.jobs.build.steps.find((s: any) => String(s.run).includes('napi build')).run
    expect(build).toContain('--target ${{ matrix.target }}')
    expect(build).toContain('--release')
  })

  it('keeps the napi CLI out of what users install', () => {
    expect(pkg.dependencies).toBeUndefined()
    expect(pkg.devDependencies['@napi-rs/cli']).toBeDefined()
    expect(pkg.optionalDependencies).toBeUndefined() // written by `napi prepublish` at release
  })
})
