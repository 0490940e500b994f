//! The napi classes lib/ builds the public API on. Thin: they convert arguments (already
//! validated by lib/), pick the memory path (answered on the calling thread) or the Redis path
//! (a tokio future), and map errors to coded messages.

mod clock;
mod error;
mod id;
mod rate_limiter;
mod response_cache;
mod session_store;
mod store;
mod token_budget;
