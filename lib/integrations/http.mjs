// ESM entry of tollgate/http: the same objects as the CommonJS entry.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const http = require('./http.js')

export const { expressGuard, fastifyGuard, honoGuard, rateLimitStore, rateLimitHeaders, RateLimitStore, DRAFT } = http
export default http
