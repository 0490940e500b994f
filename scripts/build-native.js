#!/usr/bin/env node
// `npm install` step. A user's install finds the prebuilt addon in the platform package npm
// picked from `optionalDependencies` (tollgate-linux-x64-gnu, tollgate-darwin-arm64, ...) and
// runs no compiler. Only when none fits this machine, or when asked with
// TOLLGATE_BUILD_FROM_SOURCE=1 (or `npm install --build-from-source`), is the addon built from
// the Rust sources shipped in the package, which needs cargo. In the repository (a contributor's
// checkout, where the napi CLI is installed as a devDependency) it builds for this machine when
// the local build is missing or older than the sources, and regenerates index.js / index.d.ts.
// TOLLGATE_SKIP_BUILD=1 skips everything (the binary is provided some other way).
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const pkg = require(path.join(root, 'package.json'))
const { platformArchAbi, waysOut } = require(path.join(root, 'lib', 'platform.js'))
const triple = platformArchAbi()
const binary = path.join(root, `${pkg.napi.binaryName}.${triple}.node`)

function newestSource(dir) {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs)
  }
  return newest
}

function upToDate() {
  const inputs = ['Cargo.toml', 'Cargo.lock', 'build.rs']
    .map((f) => path.join(root, f))
    .filter((f) => fs.existsSync(f))
    .map((f) => fs.statSync(f).mtimeMs)
  const newest = Math.max(newestSource(path.join(root, 'src')), ...inputs)
  return fs.statSync(binary).mtimeMs >= newest
}

/** Whether the loader finds a working prebuilt addon (the platform package). */
function prebuiltLoads() {
  try {
    require(path.join(root, 'index.js'))
    return true
  } catch {
    return false
  }
}

function fail(lines) {
  console.error(['', ...lines, ''].join('\n'))
  process.exit(1)
}

const yes = (v) => v !== undefined && v !== '' && v !== '0' && v !== 'false'

if (yes(process.env.TOLLGATE_SKIP_BUILD)) {
  console.log('tollgate: TOLLGATE_SKIP_BUILD is set, not building the native addon')
  process.exit(0)
}
const fromSource =
  yes(process.env.TOLLGATE_BUILD_FROM_SOURCE) || yes(process.env.npm_config_build_from_source)
if (!fromSource) {
  if (fs.existsSync(binary)) {
    // A local build (a contributor's checkout, or an earlier build from source).
    if (upToDate()) {
      console.log(`tollgate: native addon is up to date (${path.basename(binary)})`)
      process.exit(0)
    }
  } else if (prebuiltLoads()) {
    console.log(`tollgate: using the prebuilt addon (${pkg.name}-${triple})`)
    process.exit(0)
  }
}

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
if (cargo.error || cargo.status !== 0) {
  const reason = fromSource
    ? 'a build from source was asked for (TOLLGATE_BUILD_FROM_SOURCE)'
    : `no prebuilt tollgate addon is installed for this platform (${triple})`
  fail([
    `tollgate: cannot install on ${triple}: ${reason}, and \`cargo\` was not found to build it.`,
    ...waysOut(),
  ])
}

const opts = { cwd: root, stdio: 'inherit' }
let build
let cli
try {
  cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
} catch {
  cli = null
}
console.log(`tollgate: building the native addon from source (${cargo.stdout.trim()}); this takes a few minutes`)
if (cli) {
  // The repository: the napi CLI (a devDependency) also regenerates index.js and index.d.ts.
  const bin = path.join(path.dirname(cli), require(cli).bin.napi)
  const args = [bin, 'build', '--platform', '--release', '--js', 'index.js', '--dts', 'index.d.ts']
  if (fs.existsSync(path.join(root, 'Cargo.lock'))) args.push('--', '--locked')
  build = spawnSync(process.execPath, args, opts)
} else {
  // An installed package: index.js and index.d.ts ship with it; cargo builds the library and
  // it is copied where the loader looks first.
  build = spawnSync('cargo', ['build', '--release', '--locked', '--lib'], opts)
  if (build.status === 0) {
    const lib = {
      win32: `${pkg.napi.binaryName}.dll`,
      darwin: `lib${pkg.napi.binaryName}.dylib`,
    }[process.platform] ?? `lib${pkg.napi.binaryName}.so`
    const target = path.resolve(root, process.env.CARGO_TARGET_DIR || 'target')
    fs.copyFileSync(path.join(target, 'release', lib), binary)
  }
}
if (build.status !== 0) {
  fail([`tollgate: building the native addon with cargo failed on ${triple} (see the output above).`])
}
