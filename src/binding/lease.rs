//! `leaseRun`: the one round trip of a lease (lib/lease.js), on a Redis store.

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use super::id::Id;
use super::store::{open_redis, NativeStore};

/// Runs `store/redis/scripts/lease.lua` on the key of `id` under `prefix` with `args` (its
/// ARGV); resolves to the script's reply as numbers.
#[napi(ts_args_type = "store: NativeStore, prefix: string, id: string, args: string[]")]
pub fn lease_run<'env>(
  env: &'env Env,
  store: &NativeStore,
  prefix: String,
  id: Id,
  args: Vec<String>,
) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
  let redis = open_redis(&store.backend)?;
  let key = format!("{}{}", prefix, id.as_str());
  env.spawn_future(async move {
    let reply = redis.lease(&key, &args).await?;
    Ok(reply.into_iter().map(|x| x as f64).collect())
  })
}
