import path from 'node:path'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: { include: ['__test__/compat/threads.compat.ts'], pool: 'threads', root: path.join(__dirname, '..', '..') },
})
