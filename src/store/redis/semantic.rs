//! The Redis side of `SemanticCache`: entries live in Redis, shared by every process; each
//! process keeps only a [`Mirror`](crate::engine::semantic::mirror::Mirror) of the vector
//! index, kept current through the cache's change log. Keys of one cache share the hash tag
//! `{prefix}`, so each script touches one Cluster slot:
//!
//! - `{prefix}e:<key>` HASH — `v` response JSON, `q` question, `s` scope, `e` vector (f32 LE),
//!   `x` expiry; a Redis TTL too;
//! - `{prefix}ids` ZSET — every entry by expiry: eviction order, and how a process loads its
//!   index without `KEYS`;
//! - `{prefix}log` STREAM — one item per change (`k` = the entry), trimmed to about
//!   `log_cap` items; a process reads the items after its cursor on every lookup.

use super::{now_arg, scripts, RedisStore, StoreError};
use crate::engine::semantic::mirror::{from_bytes, Change};

/// Log items read per lookup; a longer backlog takes more round trips.
pub const LOG_BATCH: usize = 1000;
/// Entries per page when loading an index whole.
pub const PAGE: usize = 500;

/// The key names of one cache.
#[derive(Clone, Debug)]
pub struct SemanticKeys {
  base: String,
}

impl SemanticKeys {
  pub fn new(prefix: &str) -> Self {
    SemanticKeys {
      base: format!("{{{prefix}}}"),
    }
  }
  pub fn entry_prefix(&self) -> String {
    format!("{}e:", self.base)
  }
  pub fn entry(&self, key: &str) -> String {
    format!("{}e:{key}", self.base)
  }
  pub fn ids(&self) -> String {
    format!("{}ids", self.base)
  }
  pub fn log(&self) -> String {
    format!("{}log", self.base)
  }
}

/// What a lookup read: the exact entry, and the log after the cursor.
pub struct Lookup {
  /// `(response JSON, question)` of the exact request's entry.
  pub exact: Option<(String, String)>,
  pub log: LogRead,
}

pub enum LogRead {
  /// Changes after the cursor, and the new cursor; `full` when more may follow.
  Changes {
    changes: Vec<Change>,
    next: String,
    full: bool,
  },
  /// The cursor left the log (trimmed or cleared): load the index whole.
  Reset,
  Skipped,
}

/// One page of a whole load.
pub struct Page {
  pub cursor: String,
  pub last: Option<(String, String)>,
  pub entries: Vec<Change>,
  pub read: usize,
}

fn change(key: String, scope: Vec<u8>, vector: Vec<u8>) -> Change {
  match (String::from_utf8(scope), from_bytes(&vector)) {
    (Ok(scope), Some(unit)) if !scope.is_empty() => Change::Put { key, scope, unit },
    _ => Change::Gone { key },
  }
}

fn triples(rest: &[redis::Value]) -> Result<Vec<Change>, StoreError> {
  let mut out = Vec::with_capacity(rest.len() / 3);
  for t in rest.chunks_exact(3) {
    let key: String = redis::from_redis_value_ref(&t[0]).map_err(bad)?;
    let scope: Vec<u8> = redis::from_redis_value_ref(&t[1]).map_err(bad)?;
    let vector: Vec<u8> = redis::from_redis_value_ref(&t[2]).map_err(bad)?;
    out.push(change(key, scope, vector));
  }
  Ok(out)
}

fn bad(e: impl std::fmt::Display) -> StoreError {
  StoreError::Command(format!(
    "unexpected reply from a semantic cache script: {e}"
  ))
}

impl RedisStore {
  /// The exact entry of `key`, and the log after `cursor` (`None`: skip the log).
  pub async fn semantic_lookup(
    &self,
    keys: &SemanticKeys,
    key: &str,
    cursor: Option<&str>,
    now: Option<u64>,
  ) -> Result<Lookup, StoreError> {
    let mut inv = scripts::SEMANTIC_GET.prepare_invoke();
    inv
      .key(keys.entry(key))
      .key(keys.log())
      .arg(now_arg(now))
      .arg(cursor.unwrap_or(""))
      .arg(LOG_BATCH)
      .arg(keys.entry_prefix());
    let reply: Vec<redis::Value> = self.run(inv).await?;
    if reply.len() < 4 {
      return Err(bad("short reply"));
    }
    let v: Option<String> = redis::from_redis_value_ref(&reply[0]).map_err(bad)?;
    let q: Option<String> = redis::from_redis_value_ref(&reply[1]).map_err(bad)?;
    let status: String = redis::from_redis_value_ref(&reply[2]).map_err(bad)?;
    let next: String = redis::from_redis_value_ref(&reply[3]).map_err(bad)?;
    let log = match status.as_str() {
      "ok" => {
        let changes = triples(&reply[4..])?;
        LogRead::Changes {
          full: changes.len() >= LOG_BATCH,
          changes,
          next,
        }
      }
      "reset" => LogRead::Reset,
      _ => LogRead::Skipped,
    };
    Ok(Lookup {
      exact: v.map(|v| (v, q.unwrap_or_default())),
      log,
    })
  }

  /// One page of live entries after `after` (member, score).
  pub async fn semantic_page(
    &self,
    keys: &SemanticKeys,
    after: Option<&(String, String)>,
    now: Option<u64>,
  ) -> Result<Page, StoreError> {
    let mut inv = scripts::SEMANTIC_SNAPSHOT.prepare_invoke();
    let (m, s) = after.map_or(("", ""), |(m, s)| (m.as_str(), s.as_str()));
    inv
      .key(keys.ids())
      .key(keys.log())
      .arg(now_arg(now))
      .arg(m)
      .arg(s)
      .arg(PAGE)
      .arg(keys.entry_prefix());
    let reply: Vec<redis::Value> = self.run(inv).await?;
    if reply.len() < 4 {
      return Err(bad("short reply"));
    }
    let cursor: String = redis::from_redis_value_ref(&reply[0]).map_err(bad)?;
    let member: String = redis::from_redis_value_ref(&reply[1]).map_err(bad)?;
    let score: String = redis::from_redis_value_ref(&reply[2]).map_err(bad)?;
    let read: usize = redis::from_redis_value_ref(&reply[3]).map_err(bad)?;
    Ok(Page {
      cursor,
      last: (!member.is_empty()).then_some((member, score)),
      entries: triples(&reply[4..])?,
      read,
    })
  }

  /// `(question, response JSON)` of each key, `None` for entries gone or expired.
  pub async fn semantic_fetch(
    &self,
    keys: &SemanticKeys,
    candidates: &[&str],
    now: Option<u64>,
  ) -> Result<Vec<Option<(String, String)>>, StoreError> {
    let mut inv = scripts::SEMANTIC_FETCH.prepare_invoke();
    inv
      .key(keys.ids())
      .arg(now_arg(now))
      .arg(keys.entry_prefix());
    for k in candidates {
      inv.arg(*k);
    }
    let flat: Vec<Option<String>> = self.run(inv).await?;
    Ok(
      flat
        .chunks_exact(2)
        .map(|p| match (&p[0], &p[1]) {
          (Some(q), Some(v)) => Some((q.clone(), v.clone())),
          _ => None,
        })
        .collect(),
    )
  }

  /// Stores an entry; returns how many were evicted.
  #[allow(clippy::too_many_arguments)]
  pub async fn semantic_set(
    &self,
    keys: &SemanticKeys,
    key: &str,
    scope: &str,
    query: &str,
    response: &str,
    vector: &[u8],
    now: Option<u64>,
    ttl_ms: u64,
    max_entries: u64,
  ) -> Result<u64, StoreError> {
    let mut inv = scripts::SEMANTIC_SET.prepare_invoke();
    inv
      .key(keys.entry(key))
      .key(keys.ids())
      .key(keys.log())
      .arg(now_arg(now))
      .arg(ttl_ms)
      .arg(max_entries)
      .arg(log_cap(max_entries))
      .arg(keys.entry_prefix())
      .arg(key)
      .arg(scope)
      .arg(query)
      .arg(response)
      .arg(vector);
    self.run(inv).await
  }

  pub async fn semantic_delete(
    &self,
    keys: &SemanticKeys,
    key: &str,
    now: Option<u64>,
    max_entries: u64,
  ) -> Result<bool, StoreError> {
    let mut inv = scripts::SEMANTIC_DELETE.prepare_invoke();
    inv
      .key(keys.entry(key))
      .key(keys.ids())
      .key(keys.log())
      .arg(now_arg(now))
      .arg(key)
      .arg(log_cap(max_entries));
    let n: i64 = self.run(inv).await?;
    Ok(n == 1)
  }

  pub async fn semantic_clear(
    &self,
    keys: &SemanticKeys,
    now: Option<u64>,
  ) -> Result<u64, StoreError> {
    let mut inv = scripts::SEMANTIC_CLEAR.prepare_invoke();
    inv
      .key(keys.ids())
      .key(keys.log())
      .arg(keys.entry_prefix())
      .arg(now_arg(now));
    self.run(inv).await
  }

  /// Live entries at `now` (ms).
  pub async fn semantic_len(&self, keys: &SemanticKeys, now: u64) -> Result<u64, StoreError> {
    let mut inv = scripts::SEMANTIC_COUNT.prepare_invoke();
    inv.key(keys.ids()).arg(now);
    self.run(inv).await
  }
}

/// Log items kept: enough that a process a little behind never has to reload whole.
fn log_cap(max_entries: u64) -> u64 {
  max_entries.saturating_mul(2).max(10_000)
}
