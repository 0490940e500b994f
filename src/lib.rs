//! tollgate keeps LLM applications inside their limits and budgets.
//!
//! Three layers, each in its own folder:
//! - [`engine`]: the algorithms, pure functions over small explicit state, time passed in;
//! - [`store`]: where state lives — [`store::memory`] in this process, [`store::redis`] shared
//!   through Redis, one Lua script (one round trip) per decision;
//! - `binding`: the napi classes Node calls, which validate arguments and map errors.

pub mod engine;
pub mod store;

mod binding;
