#!/usr/bin/env node
// `npm install` step: builds the native addon from source with cargo when no up-to-date
// build is present. Set TOLLGATE_SKIP_BUILD=1 to skip it (for example when the binary is
// provided some other way).
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const binary = path.join(root, `tollgate.${process.platform}-${process.arch}-gnu.node`)

function newestSource(dir) {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs)
  }
  return newest
}

function upToDate() {
  if (!fs.existsSync(binary)) return false
  const inputs = ['Cargo.toml', 'Cargo.lock', 'build.rs']
    .map((f) => path.join(root, f))
    .filter((f) => fs.existsSync(f))
    .map((f) => fs.statSync(f).mtimeMs)
  const newest = Math.max(newestSource(path.join(root, 'src')), ...inputs)
  return fs.statSync(binary).mtimeMs >= newest
}

if (process.env.TOLLGATE_SKIP_BUILD) {
  console.log('tollgate: TOLLGATE_SKIP_BUILD is set, not building the native addon')
  process.exit(0)
}
if (upToDate()) {
  console.log(`tollgate: native addon is up to date (${path.basename(binary)})`)
  process.exit(0)
}

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
if (cargo.error || cargo.status !== 0) {
  console.error(
    [
      '',
      'tollgate: cannot build the native addon: `cargo` was not found.',
      'tollgate is a Rust addon built from source when it is installed. Install Rust',
      '(https://rustup.rs, or your system package manager), make sure `cargo` is on PATH,',
      'then run `npm install` again.',
      '',
    ].join('\n'),
  )
  process.exit(1)
}

const cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
const bin = path.join(path.dirname(cli), require(cli).bin.napi)
const args = [bin, 'build', '--platform', '--release', '--js', 'index.js', '--dts', 'index.d.ts']
if (fs.existsSync(path.join(root, 'Cargo.lock'))) args.push('--', '--locked')
console.log(`tollgate: building the native addon (${cargo.stdout.trim()}); this takes about a minute`)
const build = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
process.exit(build.status ?? 1)
