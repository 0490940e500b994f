//! The napi classes lib/ builds the public API on. Thin: they convert arguments (already
//! validated by lib/), pick the memory path (answered on the calling thread) or the Redis path
//! (a tokio future), and map errors to coded messages.

// Under `cargo test` napi-derive compiles the exports out, which leaves these unused.
#![cfg_attr(test, allow(dead_code))]

mod clock;
mod cost;
mod cost_tracker;
mod error;
mod guard;
mod id;
mod jobs;
mod lease;
mod quota;
mod rate_limiter;
mod response_cache;
mod semantic_cache;
mod session_store;
mod store;
mod token_budget;
mod tokens;

/// One tokio worker: the Redis path is I/O only, and tasks that share a thread hand work to
/// each other without waking another thread (measured: lower latency per awaited call).
#[napi_derive::module_init]
fn init() {
  if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
    .worker_threads(1)
    .enable_all()
    .build()
  {
    napi::bindgen_prelude::create_custom_tokio_runtime(rt);
  }
}
