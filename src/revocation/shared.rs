//! The list shared by every instance of a domain through Redis
//! (`revocation.redis_url`).
//!
//! Redis holds each entry in a sorted set `PREFIX:revocations`, member =
//! the entry's JSON (its file form), score = the second it expires, so
//! expired entries are trimmed by score. Adding an entry and announcing
//! it on the channel `PREFIX:revocations` is one Lua script: an entry is
//! announced exactly when it first enters the set, whichever instance (or
//! reconnect) put it there.
//!
//! One task per instance ([`run`]) owns the connections:
//! - connect: subscribe first, then read the set, so nothing announced in
//!   between is missed; take in what the set has and this instance lacks
//!   (announcements missed while away), put in what this instance has and
//!   the set lacks (entries made here while Redis was away, or a Redis
//!   that lost its data);
//! - then: announcements heard are taken in ([`Revocations::learn`]: the
//!   index and the file, never sent back); entries that come into force
//!   here ([`Revocations::share`]: `add`, and `portcullis revoke` through
//!   the file watcher) are put in the set;
//! - on any error: the gauge goes to 0, one log line, reconnect with
//!   back-off; the entries in memory keep applying and new ones keep
//!   coming into force locally, to be put in the set after reconnecting.
//!
//! Nothing here is on the request path.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncTypedCommands;
use tokio::sync::mpsc;

use super::{Entry, Revocations};
use crate::config::RedisStore;

/// Bounds a connection attempt and every command.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How often a quiet connection is checked (and the set trimmed).
const HEARTBEAT: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Back-off cap: a Redis that is back is used within this.
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Adds ARGV[2] to the set KEYS[1] with score ARGV[1] unless it is there,
/// and then only announces it on channel ARGV[3]. Returns 1 when added.
const PUT: &str = r"
if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[3], ARGV[2])
  return 1
end
return 0
";

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {}s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the subscription ended (Redis closed the connection)")]
    Unsubscribed,
    #[error("{0}")]
    Store(#[from] super::StoreError),
    #[error("the revocation task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Names in Redis.
struct Names {
    set: String,
    channel: String,
}

impl Names {
    fn of(store: &RedisStore) -> Names {
        let name = format!("{}:revocations", store.key_prefix);
        Names {
            set: name.clone(),
            channel: name,
        }
    }
}

fn client(store: &RedisStore) -> redis::RedisResult<redis::Client> {
    let info = store.connection_info()?;
    if store.tls {
        // The `redis` crate builds its rustls config from the process-wide
        // provider; several providers are compiled in (through other
        // crates), so name the one Portcullis uses everywhere else.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    match &store.ca_pem {
        Some(pem) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => redis::Client::open(info),
    }
}

async fn within<T>(f: impl Future<Output = Result<T, redis::RedisError>>) -> Result<T, SyncError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SyncError::Timeout),
    }
}

/// Shares `revocations` through Redis until the process ends.
pub async fn run(revocations: Arc<Revocations>, store: RedisStore) {
    let mut outbox = revocations.share();
    crate::metrics::revocation_store_up(false);
    let client = match client(&store) {
        Ok(c) => c,
        Err(e) => {
            // The URL was checked at load; this is a TLS set-up failure.
            tracing::error!(redis = %store.address, error = %e, "cannot set up the Redis client for the shared revocation list; revocations stay local to this instance");
            return;
        }
    };
    let names = Names::of(&store);
    let mut retry = FIRST_RETRY;
    // None: not known yet (the first outcome is always logged).
    let mut up: Option<bool> = None;
    loop {
        let mut session = Session {
            revocations: &revocations,
            names: &names,
            put: redis::Script::new(PUT),
        };
        let result = session.serve(&client, &mut outbox, || {
            crate::metrics::revocation_store_up(true);
            if up != Some(true) {
                tracing::info!(redis = %store.address, key = %names.set, "shared revocation store (Redis) is up: revocations made on any instance apply on this one");
            }
            up = Some(true);
        });
        let Err(e) = result.await;
        crate::metrics::revocation_store_up(false);
        if up == Some(true) {
            retry = FIRST_RETRY;
        }
        if up != Some(false) {
            tracing::warn!(redis = %store.address, error = %e, "shared revocation store (Redis) is down: revocations already known keep applying; new ones apply on this instance and are shared when Redis is back");
            up = Some(false);
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// One connection to Redis, from connect to its first error.
struct Session<'a> {
    revocations: &'a Arc<Revocations>,
    names: &'a Names,
    put: redis::Script,
}

impl Session<'_> {
    async fn serve(
        &mut self,
        client: &redis::Client,
        outbox: &mut mpsc::UnboundedReceiver<Entry>,
        on_up: impl FnOnce(),
    ) -> Result<std::convert::Infallible, SyncError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        // Subscribe before reading the set: an entry announced in between
        // is then heard, not lost.
        let pubsub = within(client.get_async_pubsub()).await?;
        let (mut sink, mut heard) = pubsub.split();
        within(sink.subscribe(&self.names.channel)).await?;
        let mut conn = within(client.get_multiplexed_async_connection_with_config(&config)).await?;
        self.reconcile(&mut conn).await?;
        on_up();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                msg = heard.next() => {
                    let msg = msg.ok_or(SyncError::Unsubscribed)?;
                    if let Some(e) = parse(msg.get_payload_bytes()) {
                        self.learn(vec![e]).await?;
                    }
                }
                Some(e) = outbox.recv() => {
                    self.publish(&mut conn, &e).await?;
                }
                _ = heartbeat.tick() => {
                    within(sink.ping::<redis::Value>()).await?;
                    self.trim(&mut conn).await?;
                }
            }
        }
    }

    /// After (re)connecting: Redis and this instance end up with the union.
    async fn reconcile(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Result<(), SyncError> {
        self.trim(conn).await?;
        let members: Vec<String> =
            within(conn.zrangebyscore(&self.names.set, crate::clock::now_ms() / 1000, "+inf"))
                .await?;
        let remote: Vec<Entry> = members.iter().filter_map(|m| parse(m.as_bytes())).collect();
        let known: HashSet<&str> = members.iter().map(String::as_str).collect();
        // What only this instance has: first, so a local entry is never
        // counted as learnt.
        for e in self.revocations.entries() {
            if !known.contains(member(&e).as_str()) {
                self.publish(conn, &e).await?;
            }
        }
        if !remote.is_empty() {
            let added = self.learn(remote).await?;
            if added > 0 {
                tracing::info!(
                    added,
                    total = self.revocations.len(),
                    "revocations taken in from the shared store"
                );
            }
        }
        Ok(())
    }

    async fn learn(&self, entries: Vec<Entry>) -> Result<usize, SyncError> {
        let r = self.revocations.clone();
        // File I/O: off the async threads.
        Ok(tokio::task::spawn_blocking(move || r.learn(&entries)).await??)
    }

    /// Puts an entry in the set; announced when it was not there yet.
    async fn publish(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        e: &Entry,
    ) -> Result<(), SyncError> {
        let lifetime = self.revocations.lifetime_secs();
        if e.expired(lifetime, crate::clock::now_ms()) {
            return Ok(());
        }
        let mut call = self.put.key(&self.names.set);
        call.arg(e.expires(lifetime))
            .arg(member(e))
            .arg(&self.names.channel);
        let _: i64 = within(call.invoke_async(conn)).await?;
        Ok(())
    }

    /// Drops expired entries from the set.
    async fn trim(&self, conn: &mut redis::aio::MultiplexedConnection) -> Result<(), SyncError> {
        let before = format!("({}", crate::clock::now_ms() / 1000);
        within(conn.zrembyscore(&self.names.set, "-inf", before)).await?;
        Ok(())
    }
}

/// An entry's form in Redis: its file form (deterministic, so the same
/// entry from two instances is one member).
fn member(e: &Entry) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

/// An entry from Redis; `None` (and a warning) for anything else, which
/// another program or version may have put there.
fn parse(bytes: &[u8]) -> Option<Entry> {
    match serde_json::from_slice(bytes) {
        Ok(e) => Some(e),
        Err(err) => {
            tracing::warn!(error = %err, "ignored an entry in the shared revocation store that is not a Portcullis revocation");
            None
        }
    }
}
