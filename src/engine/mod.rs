//! Pure algorithms: no napi, no I/O, time passed in as milliseconds. Each store makes them
//! atomic (a lock in memory, a Lua script in Redis) and each binding only converts arguments.

pub mod cache_key;
pub mod cost;
pub mod guard;
pub mod jobs;
pub mod provider_limit;
pub mod quota;
pub mod semantic;
pub mod session;
pub mod sliding_window;
pub mod spend;
pub mod token_budget;
pub mod tokens;
