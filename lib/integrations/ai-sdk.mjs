// ESM entry of tollgate/ai-sdk: the same objects as the CommonJS entry.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const aiSdk = require('./ai-sdk.js')

export const { guardMiddleware, usageFromAiSdk } = aiSdk
export default aiSdk
