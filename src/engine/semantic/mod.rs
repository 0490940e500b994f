//! The semantic cache's engine: answering a question from the cached answer of a similar
//! one, safely.
//!
//! - [`exact`]: cosine similarity of vectors normalised once (a dot product, SIMD), and the
//!   scan of one scope — exact, or through sign codes with an exact rescoring;
//! - [`index`]: vectors grouped by scope (model + tenant or context), never compared across;
//! - [`guard`]: refuses matches whose texts differ in negation or numbers;
//! - [`cache`]: a whole cache in this process (the memory store): entries, expiry, eviction;
//! - [`mirror`]: a process's copy of the index of a cache whose entries live in Redis.

pub mod cache;
pub mod exact;
pub mod guard;
pub mod index;
pub mod mirror;
