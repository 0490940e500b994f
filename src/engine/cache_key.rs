//! Keys of `ResponseCache`: SHA-256 of the canonical JSON (RFC 8785, JCS) of
//! `{"messages": …, "model": …}`. Canonical JSON sorts object properties and prints numbers the
//! way JavaScript does, so the same request written with its properties in another order has
//! the same key, in every process and on every store.
//!
//! ```
//! use tollgate::engine::cache_key::request_digest;
//! let a = request_digest(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#);
//! let b = request_digest(r#"{"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o"}"#);
//! assert_eq!(a.unwrap(), b.unwrap());
//! ```

use sha2::{Digest, Sha256};

/// The request could not be read as JSON.
#[derive(Debug)]
pub struct NotJson(pub String);

/// Lower-case hex SHA-256 (64 characters) of the canonical form of `json`.
pub fn request_digest(json: &str) -> Result<String, NotJson> {
  let value: serde_json::Value = serde_json::from_str(json).map_err(|e| NotJson(e.to_string()))?;
  let canonical = serde_json_canonicalizer::to_vec(&value).map_err(|e| NotJson(e.to_string()))?;
  Ok(hex::encode(Sha256::digest(&canonical)))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn sha256_of_canonical_json() {
    // tekimax's first test payload: the digest is SHA-256 of its properties sorted.
    let d = request_digest(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}"#)
      .unwrap();
    let expected = hex::encode(Sha256::digest(
      br#"{"messages":[{"content":"Hello","role":"user"}],"model":"gpt-4o"}"#,
    ));
    assert_eq!(d, expected);
    assert_eq!(d.len(), 64);
  }

  #[test]
  fn numbers_print_like_javascript() {
    assert_eq!(
      request_digest("[1.0]").unwrap(),
      request_digest("[1]").unwrap()
    );
    assert_eq!(
      request_digest("[1e21]").unwrap(),
      request_digest("[1000000000000000000000]").unwrap()
    );
    assert_ne!(
      request_digest("[1]").unwrap(),
      request_digest("[\"1\"]").unwrap()
    );
  }

  #[test]
  fn rejects_non_json() {
    assert!(request_digest("{").is_err());
  }
}
