'use strict'
// Which prebuilt addon this machine needs, which ones are published, and what to say when none
// fits. Shared by the loader (lib/native.js) and the install step (scripts/build-native.js).

const pkg = require('../package.json')

/** The platform-arch-abi suffix napi-rs names binaries and platform packages with. */
function platformArchAbi() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** The platforms a prebuilt package is published for (package.json's napi.targets). */
function supportedPlatforms() {
  return pkg.napi.targets.map((target) => {
    const [cpu, , os, abi] = target.split('-')
    const arch = { x86_64: 'x64', aarch64: 'arm64' }[cpu] ?? cpu
    const platform = { windows: 'win32' }[os] ?? os
    return [platform, arch, abi].filter(Boolean).join('-')
  })
}

/** The two ways out when no addon fits this machine. */
function waysOut() {
  return [
    'Two ways out:',
    `  - install on a supported platform: ${supportedPlatforms().join(', ')}`,
    `    (npm installs the matching ${pkg.name}-<platform> package; make sure optional`,
    '    dependencies are not disabled, e.g. by --omit=optional or --no-optional);',
    '  - or install a Rust toolchain (https://rustup.rs), make sure `cargo` is on PATH,',
    '    and run `npm install` again: tollgate then builds its addon from source.',
  ]
}

module.exports = { platformArchAbi, supportedPlatforms, waysOut }
