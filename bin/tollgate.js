#!/usr/bin/env node
'use strict'
// The `tollgate` command. One subcommand so far: `tollgate status` (lib/status.js).

const [command, ...rest] = process.argv.slice(2)

const HELP = `Usage: tollgate <command> [options]

Commands:
  status   print budgets, guard limits, quota keys and the store's health from Redis

Run \`tollgate status --help\` for its options.`

if (command === 'status') {
  require('../lib/status').main(rest).then(
    (code) => {
      process.exitCode = code
    },
    (e) => {
      process.stderr.write(`tollgate status: ${e && e.message ? e.message : e}\n`)
      process.exitCode = 1
    },
  )
} else if (command === '--help' || command === '-h' || command === 'help') {
  process.stdout.write(HELP + '\n')
} else if (command === undefined) {
  process.stderr.write(HELP + '\n')
  process.exitCode = 2
} else {
  process.stderr.write(`tollgate: unknown command ${JSON.stringify(command)}\n\n${HELP}\n`)
  process.exitCode = 2
}
