//! The napi functions lib/ builds the public API on. Thin: they convert arguments (already
//! validated by lib/), pick the memory path (answered on the calling thread) or the Redis path
//! (a tokio future), and map errors to coded messages.
//!
//! # Crossing napi: one convention
//!
//! What a crossing costs, measured on the project machine (docs/design.md): a `#[napi]` class
//! method ~290 ns before it does anything, a free function over an `External` handle ~130 ns,
//! a string argument ~55 ns, a JS object built from Rust ~700 ns, a `Float64Array` written in
//! place next to nothing. So a class crosses like this:
//!
//! - **Handle.** Its native half is a `…Core` struct behind `External<Arc<…Core>>`, made by
//!   `<class>New(store, …)` and passed to free functions (`rateLimiterRun`, `tokenBudgetRun`,
//!   `guardRun`, `quotaDecide`).
//! - **Requests in.** Amounts and times as numbers (`now` in ms; < 0 means the store's clock),
//!   the operation as a small integer code (or a function of its own), ids as [`id::Id`] (a string or a number, read
//!   once), optional strings as `Option<String>` (`undefined` costs nothing), payloads (cached
//!   responses, sessions) as the JSON text lib/ made, several meters as one `\0`-joined string
//!   plus a `Float64Array` of their numbers.
//! - **Replies out.** A decision is numbers in a fixed layout written down at the function: in
//!   process, one packed number where it fits (`rateLimiterRun`) or written into a
//!   `Float64Array` the instance owns and reuses (`reply::write`); on Redis, the promise
//!   resolves to the same numbers in the same layout, so lib/ has one decoder for both. Text
//!   payloads come back as strings. What a Lua script returns is decoded in `src/store/redis`;
//!   lib/ never sees a script's reply.
//! - **Paths.** Memory: synchronous, on the calling thread (lib/ hands back an
//!   already-resolved promise). Redis: `…Async`, a future on the one tokio worker
//!   (`store::on_redis`), whose every failure (a closed store included) rejects the promise
//!   rather than throwing.
//! - **Errors.** [`error::coded`] puts a stable code in the message; lib/'s `fromNative` turns
//!   it into a TypeError, RangeError or StoreError of the caller's realm with `code` set, on
//!   both paths. Every synchronous export has `catch_unwind`: a panic becomes
//!   `ERR_TOLLGATE_INTERNAL`, never an abort.
//!
//! Two replies carry text beside their numbers, off the hot paths: SemanticCache's hit (the
//! stored key, question and response) comes back as a small object, and CostTracker's totals
//! with the spend per tag as its decision's numbers beside the tags as JSON text
//! (`costTrackerTags`; on Redis a `{reply, tags}` pair). Quota's Redis decision resolves to
//! `[numbers, prevId]`: the memory path's numbers and the hold's previous hold id beside them
//! (text; the memory path reads it with `quotaLastPrevId`, a promise cannot share that slot).
//! Quota's rate-budget store adapter (`quotaApply`) hands a user's store state across as JSON
//! text both ways, that state being a payload the user's store keeps. Every class is on the
//! convention.

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
mod reply;
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
