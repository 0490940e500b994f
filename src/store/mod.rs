//! Where state lives: [`memory`] in this process, [`redis`] shared through Redis. Both run the
//! same engines; the memory store under a lock, the Redis store inside one Lua script a call.

pub mod key;
pub mod memory;
pub mod redis;
pub mod shared;
