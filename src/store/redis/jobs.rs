//! The Redis side of `createRedisBackend` (jobs.lua) and `ProviderLimiter` (provider.lua), and
//! the `INFO` figures of `ProviderLimiter.health()`. A child module of the store, so it runs
//! its scripts through the store's connection, timeouts and EVALSHA path.

use super::{classify, now_arg, Conn, RedisStore, StoreError};
use crate::engine::{jobs, provider_limit};

/// One jobs.lua call: `keys` = [instances, this instance's grants, models…], then the op's
/// arguments.
pub struct JobsCall<'a> {
  pub op: &'a str,
  pub keys: &'a [&'a str],
  pub now: Option<u64>,
  pub instance: &'a str,
  pub instance_timeout_ms: u64,
  /// Sliding windows (buckets) instead of fixed ones.
  pub sliding: bool,
  pub limits: Option<jobs::Limits>,
  pub estimate: jobs::Usage,
  /// release: actual usage, the minute reserved in, give the concurrency slot back.
  pub settle: Option<(jobs::Usage, u64, bool)>,
  /// acquire, release: the grant's id (unique per instance; 0 = none), which makes a release
  /// sent twice count once and a late acquire its caller gave up on a no-op (jobs.lua).
  pub id: u64,
}

/// A model's global counts, as of a reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelCounts {
  pub minute: jobs::Usage,
  pub day: jobs::Usage,
  pub in_flight: u64,
  /// Fixed windows: the start of the stored minute these counts are of (0: none stored); the
  /// day counts are of that minute's day. The counts are the windows as stored after the
  /// call, not rolled to its clock (a call that writes nothing leaves them as they were): the
  /// caller rolls them to its own clock, as the engine's `ModelState::view` does. Sliding
  /// windows: the totals at the call's time, and that time's minute.
  pub minute_start: u64,
}

/// What an acquire or a release decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
  Granted,
  Refused,
  /// The estimate can never fit a limit.
  Never,
  /// A late acquire its caller gave up on, or a release already settled: nothing changed.
  Moot,
}

/// A jobs.lua reply, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobsReply {
  /// acquire, release
  Decision {
    status: JobStatus,
    /// The minute the grant was counted in (what a release names it by).
    minute: u64,
    /// Refused: ms until the blocking window resets; `None` when only concurrency blocks.
    retry_ms: Option<u64>,
    /// The instance was (re)registered by this call.
    registered: bool,
    counts: ModelCounts,
  },
  /// heartbeat
  Heartbeat {
    registered: bool,
    live: u64,
    dropped: u64,
    models: Vec<ModelCounts>,
  },
  /// unregister
  Unregistered { dropped: bool },
}

fn counts(r: &[i64]) -> ModelCounts {
  let n = |i: usize| r.get(i).copied().unwrap_or(0).max(0) as u64;
  ModelCounts {
    minute: jobs::Usage {
      tokens: n(0),
      requests: n(1),
    },
    day: jobs::Usage {
      tokens: n(2),
      requests: n(3),
    },
    in_flight: n(4),
    minute_start: n(5),
  }
}

/// Decodes jobs.lua's reply to `op` (its header documents the layout).
fn decode(op: &str, r: &[i64]) -> Result<JobsReply, StoreError> {
  let short = || StoreError::Command(format!("jobs.lua returned {} values to '{op}'", r.len()));
  match op {
    "a" | "r" => {
      if r.len() < 10 {
        return Err(short());
      }
      Ok(JobsReply::Decision {
        status: match r[0] {
          1 => JobStatus::Granted,
          2 => JobStatus::Never,
          3 => JobStatus::Moot,
          _ => JobStatus::Refused,
        },
        minute: r[1].max(0) as u64,
        retry_ms: (r[2] >= 0).then_some(r[2] as u64),
        registered: r[3] == 1,
        counts: counts(&r[4..10]),
      })
    }
    "h" => {
      if r.len() < 3 || !(r.len() - 3).is_multiple_of(6) {
        return Err(short());
      }
      Ok(JobsReply::Heartbeat {
        registered: r[0] == 1,
        live: r[1].max(0) as u64,
        dropped: r[2].max(0) as u64,
        models: r[3..].chunks_exact(6).map(counts).collect(),
      })
    }
    _ => Ok(JobsReply::Unregistered {
      dropped: r.first() == Some(&1),
    }),
  }
}

impl RedisStore {
  /// One decision of the job limiter's Redis backend.
  pub async fn jobs(&self, c: JobsCall<'_>) -> Result<JobsReply, StoreError> {
    let mut inv = super::scripts::JOBS.prepare_invoke();
    for k in c.keys {
      inv.key(*k);
    }
    inv
      .arg(c.op)
      .arg(now_arg(c.now))
      .arg(c.instance)
      .arg(c.instance_timeout_ms)
      .arg(if c.sliding { "s" } else { "f" });
    if let Some(l) = c.limits {
      inv
        .arg(l.tpm)
        .arg(l.rpm)
        .arg(l.tpd)
        .arg(l.rpd)
        .arg(l.concurrency)
        .arg(c.estimate.tokens)
        .arg(c.estimate.requests);
    }
    if let Some((actual, grant, release)) = c.settle {
      inv
        .arg(actual.tokens)
        .arg(actual.requests)
        .arg(grant)
        .arg(if release { 1 } else { 0 });
    }
    if c.limits.is_some() {
      inv.arg(c.id);
    }
    let reply: Vec<i64> = self.run(inv).await?;
    decode(c.op, &reply)
  }

  /// One `ProviderLimiter.tryConsume` on the hash at `key`.
  pub async fn provider_consume(
    &self,
    key: &str,
    points: u64,
    duration_ms: u64,
    now: Option<u64>,
    cost: u64,
  ) -> Result<provider_limit::Decision, StoreError> {
    let mut inv = super::scripts::PROVIDER.prepare_invoke();
    inv
      .key(key)
      .arg(points)
      .arg(duration_ms)
      .arg(now_arg(now))
      .arg(cost);
    let (allowed, remaining, retry, expire): (i64, i64, i64, i64) = self.run(inv).await?;
    Ok(provider_limit::Decision {
      allowed: allowed == 1,
      remaining: remaining.max(0) as u64,
      retry_in_ms: retry.max(0) as u64,
      expire: expire.max(0) as u64,
    })
  }

  /// `INFO` of the server (on a Cluster, of one node).
  pub async fn info(&self) -> Result<String, StoreError> {
    self
      .bounded(async {
        let cmd = redis::cmd("INFO");
        match self.conn().await? {
          Conn::Single(mut c) => cmd.query_async(&mut c).await,
          // INFO without a key goes to every node on a Cluster; one node is enough here.
          Conn::Cluster(mut c) => {
            let routing = redis::cluster_routing::RoutingInfo::SingleNode(
              redis::cluster_routing::SingleNodeRoutingInfo::RandomPrimary,
            );
            c.route_command(cmd, routing)
              .await
              .and_then(|v| redis::FromRedisValue::from_redis_value(v).map_err(Into::into))
          }
        }
        .map_err(classify)
      })
      .await
  }
}
