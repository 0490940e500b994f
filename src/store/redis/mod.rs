//! The Redis store: state shared by every process that points at the same Redis (or Redis
//! Cluster). Every decision is one Lua script sent with EVALSHA — one round trip — and each
//! script touches one key, so every call is Cluster-safe; a delete is a single DEL. The scripts
//! are registered in one place, `scripts.rs`, and built from one script library.
//!
//! Connections: one redis-rs `ConnectionManager` per store (reconnects in the background), or
//! one cluster connection. Connecting and every command are bounded by short timeouts, so a
//! call never hangs when Redis is down: it fails with [`StoreError::Timeout`] or
//! [`StoreError::Unavailable`]. Only those two (and [`StoreError::Closed`]) mean "Redis is
//! away"; every other failure says what is wrong (credentials, a full server, a key of another
//! type) and is never answered by a failure policy.
//!
//! Memory policy: on the first connection, and again after any outage (the server may have come
//! back with another configuration), the store reads `maxmemory` and `maxmemory-policy`
//! (`CONFIG GET`, or `INFO memory` where CONFIG is refused) before its next command. A policy
//! that can evict tollgate's keys (`allkeys-*`, `volatile-*`: every tollgate key has a TTL)
//! silently resets limits; [`Eviction::Error`] refuses every command on such a server.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot as HashSlot;
use redis::ScriptInvocation;

use crate::engine::session::{AppendOutcome, Session};
use crate::engine::{sliding_window, token_budget};
use crate::store::shared::SharedStates;

mod guard;
mod lease;
mod quota;
mod scripts;
mod spend;
pub use lease::{BudgetReply, LeaseCall, LeaseMode, LeaseReply};
pub use quota::{Pick, QuotaPick, QuotaSettle, Settle};
pub use spend::{SpendKeys, TagTotals};
pub mod jobs;
pub mod semantic;

/// Why a Redis call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
  /// Redis did not answer in time.
  Timeout(String),
  /// No connection could be made, or it broke.
  Unavailable(String),
  /// Redis answered with an error (for example a key holding another type, or a script error).
  Command(String),
  /// Redis refused the credentials or the user's ACL forbids a command.
  Auth(String),
  /// Redis is at `maxmemory` under `noeviction` and refuses writes (an `OOM` reply).
  OutOfMemory(String),
  /// The server's `maxmemory-policy` can evict tollgate's keys and the store was told to refuse
  /// such a server ([`Eviction::Error`]).
  Eviction(String),
  /// `close()` was called.
  Closed,
}

impl StoreError {
  /// True when Redis could not be reached or did not answer in time: the only failures a
  /// failure policy may answer, and after which the server is inspected again.
  pub fn is_outage(&self) -> bool {
    matches!(self, StoreError::Timeout(_) | StoreError::Unavailable(_))
  }
}

/// What a store does on a server whose `maxmemory-policy` can evict keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
  /// Reads the policy and reports it (the JavaScript layer warns once).
  Warn,
  /// Refuses every command with [`StoreError::Eviction`].
  Error,
  /// Does not read the policy.
  Ignore,
}

/// The memory settings read from the server: `maxmemory` (bytes, 0 = no limit) and
/// `maxmemory-policy`; `generation` counts the reads, so a reader can tell a new one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerMemory {
  pub generation: u64,
  pub maxmemory: Option<u64>,
  pub policy: Option<String>,
}

impl ServerMemory {
  /// True when the policy can evict tollgate's keys (all of them carry a TTL, so `volatile-*`
  /// can too).
  pub fn evicts(&self) -> bool {
    self
      .policy
      .as_deref()
      .is_some_and(|p| p.starts_with("allkeys-") || p.starts_with("volatile-"))
  }
}

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
  /// `redis://` / `rediss://` URLs: one for a single server, several (or `cluster`) for a
  /// Redis Cluster's seed nodes.
  pub urls: Vec<String>,
  pub cluster: bool,
  pub connect_timeout: Duration,
  pub command_timeout: Duration,
  pub eviction: Eviction,
}

#[derive(Clone)]
enum Conn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
}

enum Slot {
  Idle,
  Ready(Conn),
  Closed,
}

/// A handle to Redis; clone-free, shared behind an `Arc` by the bindings.
pub struct RedisStore {
  config: RedisConfig,
  slot: Mutex<Slot>,
  connecting: tokio::sync::Mutex<()>,
  /// Set on creation and after every outage: read the memory settings before the next command.
  inspect: AtomicBool,
  inspecting: tokio::sync::Mutex<()>,
  memory: Mutex<ServerMemory>,
  shared: SharedStates,
}

/// `now` as the scripts take it: milliseconds, or -1 for the Redis server's clock.
fn now_arg(now: Option<u64>) -> i64 {
  now.map_or(-1, |n| n as i64)
}

impl RedisStore {
  /// What the classes on this store keep in this process (see [`SharedStates`]).
  pub fn shared(&self) -> &SharedStates {
    &self.shared
  }

  /// Creates the handle; the connection is made by the first call.
  pub fn new(config: RedisConfig) -> Result<Self, StoreError> {
    if config.urls.is_empty() {
      return Err(StoreError::Unavailable("no Redis URL given".into()));
    }
    for url in &config.urls {
      redis::parse_redis_url(url)
        .ok_or_else(|| StoreError::Unavailable(format!("not a Redis URL: {}", redact(url))))?;
    }
    Ok(RedisStore {
      inspect: AtomicBool::new(config.eviction != Eviction::Ignore),
      inspecting: tokio::sync::Mutex::new(()),
      memory: Mutex::new(ServerMemory::default()),
      shared: SharedStates::default(),
      config,
      slot: Mutex::new(Slot::Idle),
      connecting: tokio::sync::Mutex::new(()),
    })
  }

  /// SHA1 of each script, by name, as Redis reports them in `SCRIPT EXISTS`.
  pub fn script_hashes(&self) -> Vec<(&'static str, String)> {
    scripts::all()
      .iter()
      .map(|(name, script)| (*name, script.get_hash().to_owned()))
      .collect()
  }

  fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
    self.slot.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// Ends the connection; later calls fail with [`StoreError::Closed`].
  pub fn close(&self) {
    *self.slot() = Slot::Closed;
  }

  /// True when the store talks to a Redis Cluster (keys of one script must share a slot).
  pub fn is_cluster(&self) -> bool {
    self.config.cluster || self.config.urls.len() > 1
  }

  pub fn is_closed(&self) -> bool {
    matches!(*self.slot(), Slot::Closed)
  }

  async fn conn(&self) -> Result<Conn, StoreError> {
    match &*self.slot() {
      Slot::Ready(c) => return Ok(c.clone()),
      Slot::Closed => return Err(StoreError::Closed),
      Slot::Idle => {}
    }
    let _one_at_a_time = self.connecting.lock().await;
    match &*self.slot() {
      Slot::Ready(c) => return Ok(c.clone()),
      Slot::Closed => return Err(StoreError::Closed),
      Slot::Idle => {}
    }
    let conn = self.connect().await?;
    let mut slot = self.slot();
    if matches!(*slot, Slot::Closed) {
      return Err(StoreError::Closed);
    }
    *slot = Slot::Ready(conn.clone());
    Ok(conn)
  }

  async fn connect(&self) -> Result<Conn, StoreError> {
    // rediss:// needs a rustls crypto provider; ring is the one compiled in. Installing it
    // twice (another store did) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = &self.config;
    if self.is_cluster() {
      let client = redis::cluster::ClusterClient::builder(c.urls.clone())
        .connection_timeout(c.connect_timeout)
        .response_timeout(c.command_timeout)
        .retries(1)
        .build()
        .map_err(classify)?;
      let conn = tokio::time::timeout(c.connect_timeout * 2, client.get_async_connection())
        .await
        .map_err(|_| {
          StoreError::Timeout(format!("connecting took over {:?}", c.connect_timeout * 2))
        })?
        .map_err(classify)?;
      Ok(Conn::Cluster(conn))
    } else {
      let client = redis::Client::open(c.urls[0].as_str()).map_err(classify)?;
      let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(c.connect_timeout))
        .set_response_timeout(Some(c.command_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100));
      let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(classify)?;
      Ok(Conn::Single(manager))
    }
  }

  /// Runs `work` (connecting included) within `connect_timeout + command_timeout`.
  async fn bounded<T>(
    &self,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
  ) -> Result<T, StoreError> {
    let deadline = self.config.connect_timeout + self.config.command_timeout;
    tokio::time::timeout(deadline, work)
      .await
      .unwrap_or_else(|_| {
        Err(StoreError::Timeout(format!(
          "Redis did not answer within {deadline:?}"
        )))
      })
      .map_err(|e| match e {
        // "Connection refused (os error 111)" alone does not say which Redis.
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{}: {m}", self.address())),
        StoreError::Timeout(m) => StoreError::Timeout(format!("{}: {m}", self.address())),
        other => other,
      })
  }

  /// `Redis at host:port` (every seed node of a Cluster), without credentials.
  fn address(&self) -> String {
    let nodes: Vec<String> = self
      .config
      .urls
      .iter()
      .map(|u| match redis::parse_redis_url(u) {
        Some(url) => format!(
          "{}:{}",
          url.host_str().unwrap_or("?"),
          url.port_or_known_default().unwrap_or(6379)
        ),
        None => "?".to_owned(),
      })
      .collect();
    format!("Redis at {}", nodes.join(", "))
  }

  /// Runs one script invocation (EVALSHA, loading the script on NOSCRIPT).
  async fn run<T: redis::FromRedisValue>(
    &self,
    invocation: ScriptInvocation<'_>,
  ) -> Result<T, StoreError> {
    let invocation = &invocation;
    self
      .exec(|conn| async move {
        match conn {
          Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
          Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
        }
      })
      .await
  }

  /// Runs one plain command (routed by its key on a Cluster).
  async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
    self
      .exec(|conn| async move {
        match conn {
          Conn::Single(mut c) => cmd.query_async(&mut c).await,
          Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
      })
      .await
  }

  /// Runs `send` on the connection, within the store's deadline, after reading the server's
  /// memory settings if they are due; an outage marks them due again.
  ///
  /// A connection that died while idle (Redis restarted between two calls) is found by the
  /// first command, which fails at once with "broken pipe" before anything is written; that
  /// command is sent again on the connection the manager opens in its place, so the first call
  /// after a restart succeeds. Only a failure on the very first poll is retried: by then the
  /// command cannot have reached a socket (writing happens in the connection's own task), so it
  /// is never sent twice.
  async fn exec<T, F, Fut>(&self, send: F) -> Result<T, StoreError>
  where
    F: Fn(Conn) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
  {
    let result = self
      .bounded(async {
        let conn = self.conn().await?;
        self.inspect_if_due(&conn).await?;
        let mut first = std::pin::pin!(send(conn.clone()));
        match std::future::poll_fn(|cx| Poll::Ready(first.as_mut().poll(cx))).await {
          Poll::Ready(Err(e)) if unsent(&e) => {
            // A new connection: the server may have restarted with another configuration.
            self.inspect_due();
            self.inspect_if_due(&conn).await?;
            send(conn.clone()).await.map_err(classify)
          }
          Poll::Ready(result) => result.map_err(classify),
          Poll::Pending => first.await.map_err(classify),
        }
      })
      .await;
    if let Err(e) = &result {
      if e.is_outage() {
        self.inspect_due();
      }
    }
    result
  }

  /// Marks the memory settings to be read again before the next command.
  fn inspect_due(&self) {
    if self.config.eviction != Eviction::Ignore {
      self.inspect.store(true, Ordering::Relaxed);
    }
  }

  /// Reads `maxmemory-policy` when due (one command, once per connection or outage) and, under
  /// [`Eviction::Error`], refuses a server that can evict keys.
  async fn inspect_if_due(&self, conn: &Conn) -> Result<(), StoreError> {
    if self.inspect.load(Ordering::Relaxed) {
      let _one = self.inspecting.lock().await;
      if self.inspect.load(Ordering::Relaxed) {
        let (maxmemory, policy) = read_memory(conn).await?;
        let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        m.generation += 1;
        m.maxmemory = maxmemory;
        m.policy = policy;
        self.inspect.store(false, Ordering::Relaxed);
      }
    }
    if self.config.eviction == Eviction::Error {
      let m = self.server_memory();
      if m.evicts() {
        return Err(StoreError::Eviction(format!(
          "the server's maxmemory-policy is {} and can evict tollgate's keys (limits would reset); use noeviction or a dedicated instance",
          m.policy.unwrap_or_default()
        )));
      }
    }
    Ok(())
  }

  /// The memory settings last read from the server.
  pub fn server_memory(&self) -> ServerMemory {
    self
      .memory
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .clone()
  }

  /// `PING` (on a Cluster, every master): the cheap command that probes a store after an
  /// outage. Reads the memory settings first when they are due.
  pub async fn ping(&self) -> Result<(), StoreError> {
    let _: String = self.command(&redis::cmd("PING")).await?;
    Ok(())
  }

  // ---- one method per decision -------------------------------------------------------------

  pub async fn rate_limit(
    &self,
    key: &str,
    limit: sliding_window::Limit,
    now: Option<u64>,
    op: sliding_window::Op,
  ) -> Result<sliding_window::Decision, StoreError> {
    let decisions = self.rate_limit_many(limit, &[(key, op, now)]).await?;
    Ok(decisions[0])
  }

  /// Several decisions of one limiter, in order, each as if alone: one EVALSHA for all of
  /// them (on a Cluster, one per hash slot, sent concurrently).
  pub async fn rate_limit_many(
    &self,
    limit: sliding_window::Limit,
    calls: &[(&str, sliding_window::Op, Option<u64>)],
  ) -> Result<Vec<sliding_window::Decision>, StoreError> {
    let groups: Vec<Vec<usize>> = if self.is_cluster() {
      let mut by_slot: Vec<(HashSlot, Vec<usize>)> = Vec::new();
      for (i, (key, _, _)) in calls.iter().enumerate() {
        let slot = HashSlot::for_key(key);
        match by_slot.iter_mut().find(|(s, _)| *s == slot) {
          Some((_, members)) => members.push(i),
          None => by_slot.push((slot, vec![i])),
        }
      }
      by_slot.into_iter().map(|(_, members)| members).collect()
    } else {
      vec![(0..calls.len()).collect()]
    };
    let runs = groups.iter().map(|members| async move {
      let mut inv = scripts::RATE_LIMIT.prepare_invoke();
      inv.arg(limit.max).arg(limit.window_ms);
      for &i in members {
        let (key, op, now) = calls[i];
        inv.key(key).arg(op.code()).arg(now_arg(now));
      }
      let flat: Vec<u64> = self.run(inv).await?;
      Ok::<_, StoreError>((members, flat))
    });
    let mut out = vec![
      sliding_window::Decision {
        allowed: false,
        remaining: 0,
        reset_in_seconds: 0,
        reset_ms: 0
      };
      calls.len()
    ];
    for result in join_all(runs).await {
      let (members, flat) = result?;
      if flat.len() != members.len() * 3 {
        return Err(StoreError::Command(format!(
          "rate_limit.lua returned {} values for {} decisions",
          flat.len(),
          members.len()
        )));
      }
      for (j, &i) in members.iter().enumerate() {
        out[i] = sliding_window::Decision {
          allowed: flat[3 * j] == 1,
          remaining: flat[3 * j + 1] as u32,
          reset_in_seconds: flat[3 * j + 2].div_ceil(1000),
          reset_ms: flat[3 * j + 2],
        };
      }
    }
    Ok(out)
  }

  pub async fn budget(
    &self,
    key: &str,
    limit: token_budget::Limit,
    now: Option<u64>,
    op: &token_budget::Op,
  ) -> Result<token_budget::Decision, StoreError> {
    let (code, tokens, id) = op.script_args();
    let mut inv = scripts::BUDGET.prepare_invoke();
    inv
      .key(key)
      .arg(code)
      .arg(limit.max)
      .arg(limit.period_ms)
      .arg(limit.hold_ms)
      .arg(now_arg(now))
      .arg(tokens)
      .arg(id);
    let (allowed, used, reserved, reset_ms, hold_id, hold_exp): (i64, u64, u64, u64, String, u64) =
      self.run(inv).await?;
    Ok(token_budget::Decision {
      allowed: allowed == 1,
      used,
      reserved,
      remaining: limit.max.saturating_sub(used + reserved),
      reset_in_seconds: reset_ms.div_ceil(1000),
      hold: (!hold_id.is_empty()).then_some(token_budget::Hold {
        id: hold_id,
        tokens,
        expires_at: hold_exp,
      }),
    })
  }

  pub async fn get_text(&self, key: &str, now: Option<u64>) -> Result<Option<String>, StoreError> {
    let mut inv = scripts::CACHE_GET.prepare_invoke();
    inv.key(key).arg(now_arg(now));
    self.run(inv).await
  }

  pub async fn set_text(
    &self,
    key: &str,
    text: &str,
    now: Option<u64>,
    ttl_ms: u64,
  ) -> Result<(), StoreError> {
    let mut inv = scripts::PUT.prepare_invoke();
    inv
      .key(key)
      .arg(now_arg(now))
      .arg(ttl_ms)
      .arg("v")
      .arg(text);
    let _: i64 = self.run(inv).await?;
    Ok(())
  }

  /// Deletes a value written by [`Self::set_text`] or [`Self::session_save`]; true when it was
  /// live at `now` (an expired one is deleted too, and is not counted: as the MemoryStore).
  pub async fn delete(&self, key: &str, now: Option<u64>) -> Result<bool, StoreError> {
    let mut inv = scripts::DELETE.prepare_invoke();
    inv.key(key).arg(now_arg(now));
    let n: i64 = self.run(inv).await?;
    Ok(n == 1)
  }

  pub async fn session_save(
    &self,
    key: &str,
    session: &Session,
    now: Option<u64>,
    ttl_ms: u64,
  ) -> Result<(), StoreError> {
    let mut inv = scripts::PUT.prepare_invoke();
    inv
      .key(key)
      .arg(now_arg(now))
      .arg(ttl_ms)
      .arg("d")
      .arg(&session.head);
    if let Some(messages) = &session.messages {
      inv.arg("m").arg(messages);
    }
    let _: i64 = self.run(inv).await?;
    Ok(())
  }

  pub async fn session_load(
    &self,
    key: &str,
    now: Option<u64>,
  ) -> Result<Option<String>, StoreError> {
    let mut inv = scripts::SESSION.prepare_invoke();
    inv.key(key).arg("l").arg(now_arg(now)).arg(0);
    let found: Option<(String, Option<String>)> = self.run(inv).await?;
    Ok(found.map(|(head, messages)| Session { head, messages }.assemble()))
  }

  /// Renews the expiry of a live session or cache entry; false when there is none.
  pub async fn touch(&self, key: &str, now: Option<u64>, ttl_ms: u64) -> Result<bool, StoreError> {
    let mut inv = scripts::SESSION.prepare_invoke();
    inv.key(key).arg("t").arg(now_arg(now)).arg(ttl_ms);
    let touched: i64 = self.run(inv).await?;
    Ok(touched == 1)
  }

  pub async fn session_append(
    &self,
    key: &str,
    items: &str,
    now: Option<u64>,
    ttl_ms: u64,
    max_bytes: Option<usize>,
  ) -> Result<AppendOutcome, StoreError> {
    let mut inv = scripts::SESSION.prepare_invoke();
    let cap = max_bytes.map_or(-1, |c| c as i64);
    inv
      .key(key)
      .arg("a")
      .arg(now_arg(now))
      .arg(ttl_ms)
      .arg(items)
      .arg(cap);
    let (status, size): (i64, usize) = self.run(inv).await?;
    Ok(match status {
      1 => AppendOutcome::Appended(size),
      0 => AppendOutcome::TooLarge(size),
      _ => AppendOutcome::NotAMessageList,
    })
  }
}

/// True for an error a command meets on its first poll when the connection was dead before
/// anything was written (the connection manager then starts a new one).
fn unsent(e: &redis::RedisError) -> bool {
  e.is_connection_dropped() || e.is_connection_refusal()
}

/// Runs `attempt`; when it fails on its first poll with an I/O error — the connection was dead
/// before anything was written — runs it once more (the connection manager has started a new
/// connection, which the second attempt awaits).
async fn retry_unsent<T, F, Fut>(attempt: F) -> redis::RedisResult<T>
where
  F: Fn() -> Fut,
  Fut: Future<Output = redis::RedisResult<T>>,
{
  let mut first = std::pin::pin!(attempt());
  let polled = std::future::poll_fn(|cx| Poll::Ready(first.as_mut().poll(cx))).await;
  match polled {
    Poll::Ready(Err(e)) if unsent(&e) => attempt().await,
    Poll::Ready(result) => result,
    Poll::Pending => first.await,
  }
}

/// True when the server refused this connection's credentials (not an ACL refusing a command).
fn unauthenticated(e: &redis::RedisError) -> bool {
  e.kind() == redis::ErrorKind::AuthenticationFailed
    || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// `maxmemory` and `maxmemory-policy` of the server (on a Cluster, of one master): `CONFIG GET`,
/// else the `INFO memory` section (a managed Redis may refuse CONFIG), else unknown.
async fn read_memory(conn: &Conn) -> Result<(Option<u64>, Option<String>), StoreError> {
  let mut config = redis::cmd("CONFIG");
  config.arg("GET").arg("maxmemory*");
  let reply: redis::RedisResult<Vec<String>> = query_one(conn, &config).await;
  match reply {
    Ok(flat) => {
      let field = |name: &str| {
        flat
          .chunks(2)
          .find(|kv| kv.len() == 2 && kv[0] == name)
          .map(|kv| kv[1].clone())
      };
      return Ok((
        field("maxmemory").and_then(|v| v.parse().ok()),
        field("maxmemory-policy"),
      ));
    }
    Err(e) => {
      let auth = unauthenticated(&e);
      let e = classify(e);
      if e.is_outage() || auth {
        return Err(e);
      }
    }
  }
  let mut info = redis::cmd("INFO");
  info.arg("memory");
  match query_one::<String>(conn, &info).await {
    Ok(text) => {
      let field = |name: &str| {
        text.lines().find_map(|l| {
          l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
        })
      };
      Ok((
        field("maxmemory").and_then(|v| v.parse().ok()),
        field("maxmemory_policy"),
      ))
    }
    Err(e) => {
      let auth = unauthenticated(&e);
      let e = classify(e);
      if e.is_outage() || auth {
        Err(e)
      } else {
        Ok((None, None))
      }
    }
  }
}

/// One command to the server, or on a Cluster to one master.
async fn query_one<T: redis::FromRedisValue>(
  conn: &Conn,
  cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
  match conn.clone() {
    Conn::Single(c) => {
      retry_unsent(|| {
        let mut c = c.clone();
        async move { cmd.query_async(&mut c).await }
      })
      .await
    }
    Conn::Cluster(mut c) => {
      let routing = redis::cluster_routing::RoutingInfo::SingleNode(
        redis::cluster_routing::SingleNodeRoutingInfo::RandomPrimary,
      );
      let v = c.route_command(cmd.clone(), routing).await?;
      redis::FromRedisValue::from_redis_value(v).map_err(Into::into)
    }
  }
}

/// A URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
  let Some(scheme_end) = url.find("://") else {
    return url.to_owned();
  };
  let rest = &url[scheme_end + 3..];
  let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
  let authority = &rest[..authority_end];
  match authority.rfind('@') {
    Some(at) => {
      let userinfo = &authority[..at];
      let user = userinfo.split(':').next().unwrap_or("");
      let masked = if userinfo.contains(':') {
        format!("{user}:***")
      } else {
        "***".to_owned()
      };
      format!(
        "{}{masked}{}",
        &url[..scheme_end + 3],
        &url[scheme_end + 3 + at..]
      )
    }
    None => url.to_owned(),
  }
}

pub(crate) fn classify(e: redis::RedisError) -> StoreError {
  use redis::{ErrorKind, ServerErrorKind};
  if e.is_timeout() {
    return StoreError::Timeout(e.to_string());
  }
  if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
    return StoreError::Unavailable(e.to_string());
  }
  match e.kind() {
    // Loading a dump, a failover under way, a Cluster without quorum: away for now.
    ErrorKind::Server(
      ServerErrorKind::BusyLoading
      | ServerErrorKind::ReadOnly
      | ServerErrorKind::ClusterDown
      | ServerErrorKind::TryAgain
      | ServerErrorKind::MasterDown,
    )
    | ErrorKind::ClusterConnectionNotFound => StoreError::Unavailable(e.to_string()),
    ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm) => {
      StoreError::Auth(e.to_string())
    }
    _ => match e.code() {
      Some("NOAUTH" | "WRONGPASS" | "NOPERM") => StoreError::Auth(e.to_string()),
      // What Redis answers (before closing the connection) to a long command from a client that
      // has not authenticated.
      _ if e.to_string().contains("Protocol error: unauthenticated") => {
        StoreError::Auth(e.to_string())
      }
      Some("OOM") => StoreError::OutOfMemory(e.to_string()),
      _ => StoreError::Command(e.to_string()),
    },
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn redact_masks_the_password_and_keeps_the_rest() {
    assert_eq!(
      redact("redis://admin:Hunter2@db.internal:port/0"),
      "redis://admin:***@db.internal:port/0"
    );
    assert_eq!(redact("rediss://:s3cret@h:6380"), "rediss://:***@h:6380");
    // A lone user-info part may be a token: masked whole.
    assert_eq!(redact("redis://token@h:1"), "redis://***@h:1");
    // An @ after the authority (in the path or fragment) is not user info.
    assert_eq!(redact("redis://h:1/0#a@b"), "redis://h:1/0#a@b");
    assert_eq!(redact("not a url"), "not a url");
  }

  #[test]
  fn only_unreachable_or_slow_servers_are_outages() {
    use std::io;
    let io_err = |k| classify(redis::RedisError::from(io::Error::from(k)));
    assert!(matches!(
      io_err(io::ErrorKind::ConnectionRefused),
      StoreError::Unavailable(_)
    ));
    assert!(matches!(
      io_err(io::ErrorKind::TimedOut),
      StoreError::Timeout(_)
    ));
    // Server replies (WRONGPASS, NOAUTH, OOM, LOADING, …) are classified against real servers
    // in __test__/store-faults.test.ts.
    assert!(StoreError::Timeout("t".into()).is_outage());
    assert!(StoreError::Unavailable("u".into()).is_outage());
    for e in [
      StoreError::Command("WRONGTYPE".into()),
      StoreError::Auth("WRONGPASS".into()),
      StoreError::OutOfMemory("OOM".into()),
      StoreError::Eviction("allkeys-lru".into()),
      StoreError::Closed,
    ] {
      assert!(!e.is_outage(), "{e:?}");
    }
  }

  #[test]
  fn evicting_policies() {
    let m = |p: &str| ServerMemory {
      policy: Some(p.into()),
      ..ServerMemory::default()
    };
    for p in [
      "allkeys-lru",
      "allkeys-lfu",
      "allkeys-random",
      "volatile-lru",
      "volatile-ttl",
    ] {
      assert!(m(p).evicts(), "{p}");
    }
    assert!(!m("noeviction").evicts());
    assert!(!ServerMemory::default().evicts());
  }
}
