//! Long-lived connections end with the session that let them in. A
//! request allowed with a session carries a [`SessionBound`]: the
//! session's revocable identity and its end. A spliced WebSocket and a
//! response body still streaming when first polled wait on
//! [`Watch::ended`] beside their data: it resolves at the session's end,
//! or when a revocation naming the session comes into force (woken by
//! `revocation::notify`, not by polling). Passthrough paths and tokens are
//! not sessions and carry none.
//!
//! Ordinary requests pay two reference counts for this: the watch is armed
//! only when a body has to wait for the upstream or a tunnel is spliced.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::request_ctx::RequestCtx;
use crate::revocation::Revocations;
use crate::session::SessionClaims;

/// The session a forwarded request was let in with.
#[derive(Clone)]
pub struct SessionBound {
    claims: Arc<SessionClaims>,
    /// Unix seconds: when the session stops being accepted.
    ends_at: u64,
    revocations: Arc<Revocations>,
}

impl std::fmt::Debug for SessionBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The claims name a person: only the end is worth a debug line.
        f.debug_struct("SessionBound")
            .field("ends_at", &self.ends_at)
            .finish_non_exhaustive()
    }
}

/// Why a long-lived connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Revoked,
    Expired,
}

impl EndReason {
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Revoked => "revoked",
            EndReason::Expired => "expired",
        }
    }
}

/// What kind of connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    WebSocket,
    Stream,
}

impl Held {
    pub fn label(self) -> &'static str {
        match self {
            Held::WebSocket => "websocket",
            Held::Stream => "stream",
        }
    }
}

impl SessionBound {
    /// `ends_at`: `Sessions::ends_at` of the claims.
    pub fn new(
        claims: Arc<SessionClaims>,
        ends_at: u64,
        revocations: Arc<Revocations>,
    ) -> SessionBound {
        SessionBound {
            claims,
            ends_at,
            revocations,
        }
    }

    /// Whether the session is revoked now (one look-up in the list).
    fn revoked(&self) -> bool {
        self.revocations.revokes(&self.claims.revocable())
    }

    /// Resolves when the session ends: at its end of life, or at the first
    /// revocation that names it. Subscribes before looking, so a revocation
    /// that arrives between the two is not missed.
    pub async fn ended(&self) -> EndReason {
        let mut added = self.revocations.subscribe();
        if self.revoked() {
            return EndReason::Revoked;
        }
        let left_ms = self
            .ends_at
            .saturating_mul(1000)
            .saturating_sub(crate::clock::now_ms());
        let expiry = tokio::time::sleep(Duration::from_millis(left_ms));
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                () = &mut expiry => return EndReason::Expired,
                changed = added.changed() => {
                    if changed.is_err() {
                        // The list is gone (never while the instance runs):
                        // the end of life still holds.
                        (&mut expiry).await;
                        return EndReason::Expired;
                    }
                    if self.revoked() {
                        return EndReason::Revoked;
                    }
                }
            }
        }
    }
}

/// A [`SessionBound`] armed for one connection, with what its close is
/// recorded under.
pub struct Watch {
    bound: SessionBound,
    held: Held,
    request_id: String,
    peer: IpAddr,
    peer_trusted: bool,
    client_ip: IpAddr,
}

impl Watch {
    pub fn new(bound: SessionBound, held: Held, ctx: RequestCtx<'_>) -> Watch {
        Watch {
            bound,
            held,
            request_id: ctx.request_id.to_string(),
            peer: ctx.peer,
            peer_trusted: ctx.peer_trusted,
            client_ip: ctx.client_ip,
        }
    }

    /// [`SessionBound::ended`], then the log line, audit event and metric
    /// of the close the caller is about to make.
    pub async fn ended(self) -> EndReason {
        let reason = self.bound.ended().await;
        let (held, why) = (self.held.label(), reason.label());
        tracing::info!(
            request_id = self.request_id,
            connection = held,
            reason = why,
            "closing a long-lived connection: its session ended"
        );
        crate::audit::long_lived_closed(
            RequestCtx {
                request_id: &self.request_id,
                peer: self.peer,
                peer_trusted: self.peer_trusted,
                client_ip: self.client_ip,
            },
            &self.bound.claims.user,
            held,
            why,
        );
        crate::metrics::long_lived_closed(held, why);
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, IdpKind};
    use crate::revocation::entry::Source;
    use crate::revocation::{Entry, Target};

    fn claims(user: &str) -> Arc<SessionClaims> {
        let config = crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n",
        )
        .unwrap();
        let sessions =
            crate::session::Sessions::new(&config, Arc::new(crate::session::KeyRing::generate()));
        let id = Identity {
            subject: format!("{user}-sub"),
            user: user.into(),
            ..Default::default()
        };
        Arc::new(sessions.claims_for(&id, IdpKind::Oidc, crate::clock::now()))
    }

    fn revoke_user(list: &Revocations, user: &str) {
        list.add(Entry {
            target: Target::User(user.into()),
            at_ms: crate::clock::now_ms() + 1,
            source: Source::Cli,
            by: "test".into(),
        })
        .unwrap();
    }

    #[tokio::test]
    async fn a_revocation_ends_only_the_session_it_names() {
        let list = Arc::new(Revocations::in_memory());
        let far = crate::clock::now() + 3600;
        let alice = SessionBound::new(claims("alice"), far, list.clone());
        let bob = SessionBound::new(claims("bob"), far, list.clone());
        let (alice_end, bob_end) = (alice.ended(), bob.ended());
        tokio::pin!(alice_end, bob_end);
        // Both are watching before the revocation arrives.
        assert!(futures_poll(&mut alice_end).is_none());
        assert!(futures_poll(&mut bob_end).is_none());
        revoke_user(&list, "alice");
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), alice_end)
                .await
                .expect("alice's connection ends"),
            EndReason::Revoked
        );
        assert!(
            futures_poll(&mut bob_end).is_none(),
            "bob's connection stays"
        );
    }

    #[tokio::test]
    async fn an_already_revoked_or_ended_session_ends_at_once() {
        let list = Arc::new(Revocations::in_memory());
        let c = claims("carol");
        revoke_user(&list, "carol");
        let far = crate::clock::now() + 3600;
        let revoked = SessionBound::new(c, far, list.clone());
        assert_eq!(revoked.ended().await, EndReason::Revoked);
        let past = SessionBound::new(claims("dave"), crate::clock::now() - 1, list);
        assert_eq!(past.ended().await, EndReason::Expired);
    }

    /// Polls a future once.
    fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
