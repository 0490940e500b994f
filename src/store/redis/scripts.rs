//! Every Lua script the Redis store runs, registered in one place.
//!
//! Each engine's Redis logic is one script under `scripts/`, with the KEYS/ARGV header that
//! says what it reads and returns. What several engines' scripts share is written once in the
//! script library, `scripts/lib/`: [`base`](../scripts/lib/base.lua) (the clock every call is
//! decided at, integers as Redis stores them) goes before every script, and a script names the
//! other parts it needs (`holds` for the amount holds of TokenBudget and CostTracker). A script
//! is assembled at compile time, so Redis still sees one script per call (one EVALSHA) and
//! a change to a library function changes every script that uses it, and its SHA1.
//!
//! [`all`] lists every script with its name: the store's `scriptHashes()` and the test that
//! pins each SHA1 read it, and a unit test checks that every file under `scripts/` is here.

use std::sync::LazyLock;

use redis::Script;

/// A script assembled from the library's base, the named parts and the script's own file.
macro_rules! script {
  ($file:literal $(, $part:literal)*) => {
    LazyLock::new(|| {
      Script::new(concat!(
        include_str!("scripts/lib/base.lua"),
        $(include_str!(concat!("scripts/lib/", $part, ".lua")),)*
        include_str!(concat!("scripts/", $file, ".lua"))
      ))
    })
  };
}

pub static RATE_LIMIT: LazyLock<Script> = script!("rate_limit");
pub static BUDGET: LazyLock<Script> = script!("budget", "holds");
pub static SPEND: LazyLock<Script> = script!("spend", "holds");
pub static GUARD: LazyLock<Script> = script!("guard");
pub static QUOTA: LazyLock<Script> = script!("quota");
pub static CACHE_GET: LazyLock<Script> = script!("cache_get");
pub static PUT: LazyLock<Script> = script!("put");
pub static DELETE: LazyLock<Script> = script!("delete");
pub static SESSION: LazyLock<Script> = script!("session");
pub static JOBS: LazyLock<Script> = script!("jobs");
pub static PROVIDER: LazyLock<Script> = script!("provider");
pub static SEMANTIC_GET: LazyLock<Script> = script!("semantic_get");
pub static SEMANTIC_SNAPSHOT: LazyLock<Script> = script!("semantic_snapshot");
pub static SEMANTIC_FETCH: LazyLock<Script> = script!("semantic_fetch");
pub static SEMANTIC_SET: LazyLock<Script> = script!("semantic_set");
pub static SEMANTIC_DELETE: LazyLock<Script> = script!("semantic_delete");
pub static SEMANTIC_CLEAR: LazyLock<Script> = script!("semantic_clear");
pub static SEMANTIC_COUNT: LazyLock<Script> = script!("semantic_count");
pub static LEASE: LazyLock<Script> = script!("lease");

/// Every script, by the name of its file.
pub fn all() -> [(&'static str, &'static Script); 19] {
  [
    ("budget", &BUDGET),
    ("cache_get", &CACHE_GET),
    ("delete", &DELETE),
    ("guard", &GUARD),
    ("jobs", &JOBS),
    ("lease", &LEASE),
    ("provider", &PROVIDER),
    ("put", &PUT),
    ("quota", &QUOTA),
    ("rate_limit", &RATE_LIMIT),
    ("semantic_clear", &SEMANTIC_CLEAR),
    ("semantic_count", &SEMANTIC_COUNT),
    ("semantic_delete", &SEMANTIC_DELETE),
    ("semantic_fetch", &SEMANTIC_FETCH),
    ("semantic_get", &SEMANTIC_GET),
    ("semantic_set", &SEMANTIC_SET),
    ("semantic_snapshot", &SEMANTIC_SNAPSHOT),
    ("session", &SESSION),
    ("spend", &SPEND),
  ]
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn every_script_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/redis/scripts");
    let mut files: Vec<String> = std::fs::read_dir(dir)
      .unwrap()
      .filter_map(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        name.strip_suffix(".lua").map(str::to_owned)
      })
      .collect();
    files.sort();
    let names: Vec<&str> = all().iter().map(|(n, _)| *n).collect();
    assert_eq!(files, names);
  }

  #[test]
  fn library_functions_come_before_the_script() {
    let code = BUDGET.get_hash();
    assert_eq!(code.len(), 40);
    // the assembled text starts with the base and carries the holds part
    let text = concat!(
      include_str!("scripts/lib/base.lua"),
      include_str!("scripts/lib/holds.lua"),
      include_str!("scripts/budget.lua")
    );
    assert_eq!(Script::new(text).get_hash(), code);
    assert!(text.find("local function sweep_holds") < text.find("sweep_holds(key, now)"));
  }
}
