//! What one client connection is doing, and when it has taken too long.
//!
//! A connection is always in one of three states:
//!
//! - **awaiting a request's headers**, from its first byte (or from its
//!   start) until hyper hands the parsed request to the service: bounded by
//!   `connections.header_read_timeout`;
//! - **busy**, while at least one request has not finished its response
//!   (the response body is dropped when hyper has written it): not bounded
//!   here (the upstream timeout bounds the wait for the app);
//! - **idle**, after the last response until the next byte arrives:
//!   bounded by `connections.idle_timeout`. On an HTTP/2 connection, bytes
//!   are not the start of a request (the client's `WINDOW_UPDATE` after a
//!   response, its `PING`s): it stays idle until a new stream is opened,
//!   so pings cannot keep it open past the idle timeout either.
//!
//! hyper's own HTTP/1 header timer cannot tell the first and the last
//! apart (it runs while a kept-alive connection waits for its next
//! request, so it would cap keep-alive at the header timeout), and HTTP/2
//! has none; this one serves both protocols the same way.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use crate::config::Connections;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHead { since: Instant },
    Idle { since: Instant },
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    phase: Phase,
    /// HTTP/2: control frames arrive between requests.
    multiplexed: bool,
}

/// Shared by the connection's I/O, its service and its watchdog.
#[derive(Debug)]
pub(super) struct Activity {
    state: Mutex<State>,
    /// Woken when the watchdog's deadline may have moved.
    changed: Notify,
}

impl Activity {
    pub(super) fn new(now: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                phase: Phase::AwaitingHead { since: now },
                multiplexed: false,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever a panicking holder did: each
        // change is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client sent bytes: on an idle HTTP/1 connection, a request has
    /// begun.
    pub(super) fn bytes_read(&self, now: impl FnOnce() -> Instant) {
        let mut s = self.state();
        if s.in_flight == 0 && !s.multiplexed && matches!(s.phase, Phase::Idle { .. }) {
            s.phase = Phase::AwaitingHead { since: now() };
            drop(s);
            self.changed.notify_one();
        }
    }

    /// hyper parsed a request's headers; the connection is busy until the
    /// returned guard is dropped (with the response body).
    pub(super) fn request_started(self: &Arc<Self>, version: http::Version) -> InFlight {
        let mut s = self.state();
        s.in_flight += 1;
        s.multiplexed |= version == http::Version::HTTP_2;
        drop(s);
        InFlight(self.clone())
    }

    fn request_finished(&self, now: Instant) {
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.phase = Phase::Idle { since: now };
            drop(s);
            self.changed.notify_one();
        }
    }

    /// When the connection will have waited too long, and for what; `None`
    /// while a request is in flight.
    pub(super) fn deadline(&self, limits: &Connections) -> Option<(Instant, Expiry)> {
        let s = self.state();
        if s.in_flight > 0 {
            return None;
        }
        Some(match s.phase {
            Phase::AwaitingHead { since } => {
                (since + limits.header_read_timeout, Expiry::HeaderRead)
            }
            Phase::Idle { since } => (since + limits.idle_timeout, Expiry::Idle),
        })
    }

    /// Resolves after a change that may move the deadline.
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// One request whose response is not finished yet.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished(Instant::now());
    }
}

/// Why a connection is closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    HeaderRead,
    Idle,
}

impl Expiry {
    pub(super) fn label(self) -> &'static str {
        match self {
            Expiry::HeaderRead => "header_read_timeout",
            Expiry::Idle => "idle_timeout",
        }
    }
}

/// What the connection's task does when the watchdog's deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Nothing yet (the state changed since the deadline was computed).
    Wait,
    /// Say goodbye properly (HTTP/2 GOAWAY; HTTP/1 simply closes).
    GracefulClose(Expiry),
    /// Drop the connection now.
    Close(Expiry),
}

/// The decisions of one connection's task, apart from the I/O.
#[derive(Debug)]
pub(super) struct Watchdog {
    activity: Arc<Activity>,
    limits: Connections,
    /// Set once a graceful close began because of idleness: when it must
    /// be over.
    close_by: Option<Instant>,
}

impl Watchdog {
    pub(super) fn new(activity: Arc<Activity>, limits: Connections) -> Watchdog {
        Watchdog {
            activity,
            limits,
            close_by: None,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let own = self.activity.deadline(&self.limits).map(|(at, _)| at);
        match (own, self.close_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn on_deadline(&mut self, now: Instant) -> Action {
        if self.close_by.is_some_and(|by| by <= now) {
            return Action::Close(Expiry::Idle);
        }
        match self.activity.deadline(&self.limits) {
            Some((at, why)) if at <= now => match why {
                Expiry::HeaderRead => Action::Close(why),
                // A second expiry while closing: the goodbye is taking too
                // long.
                Expiry::Idle if self.close_by.is_some() => Action::Close(why),
                Expiry::Idle => {
                    // Bounded like any other wait for the client.
                    self.close_by = Some(now + self.limits.header_read_timeout);
                    Action::GracefulClose(why)
                }
            },
            _ => Action::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Connections {
        Connections {
            max: 10,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
        }
    }

    #[test]
    fn a_new_connection_must_send_its_headers_in_time() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        let mut w = Watchdog::new(a.clone(), limits());
        assert_eq!(w.deadline(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(w.on_deadline(t0 + Duration::from_secs(9)), Action::Wait);
        // More bytes of the same head do not extend it.
        a.bytes_read(|| t0 + Duration::from_secs(5));
        assert_eq!(
            w.on_deadline(t0 + Duration::from_secs(10)),
            Action::Close(Expiry::HeaderRead)
        );
    }

    #[test]
    fn busy_connections_have_no_deadline_and_idle_ones_the_idle_timeout() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        let mut w = Watchdog::new(a.clone(), limits());
        let req = a.request_started(http::Version::HTTP_11);
        assert_eq!(w.deadline(), None);
        assert_eq!(w.on_deadline(t0 + Duration::from_secs(3600)), Action::Wait);
        let second = a.request_started(http::Version::HTTP_11);
        drop(req);
        assert_eq!(w.deadline(), None, "one request still in flight");
        drop(second);
        let idle_at = w.deadline().expect("idle deadline");
        assert!(idle_at >= t0 + Duration::from_secs(75));
        assert_eq!(w.on_deadline(idle_at), Action::GracefulClose(Expiry::Idle));
        // The goodbye is bounded too.
        assert_eq!(
            w.on_deadline(idle_at + Duration::from_secs(10)),
            Action::Close(Expiry::Idle)
        );
    }

    #[test]
    fn frames_between_http2_requests_do_not_start_the_header_clock() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        let w = Watchdog::new(a.clone(), limits());
        drop(a.request_started(http::Version::HTTP_2));
        let idle = w.deadline().expect("idle deadline");
        a.bytes_read(|| t0 + Duration::from_secs(30));
        assert_eq!(w.deadline(), Some(idle), "a PING is not a request");
    }

    #[test]
    fn the_next_request_on_a_kept_alive_connection_gets_the_header_timeout() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        let mut w = Watchdog::new(a.clone(), limits());
        drop(a.request_started(http::Version::HTTP_11));
        let t1 = Instant::now();
        a.bytes_read(|| t1 + Duration::from_secs(30));
        assert_eq!(w.deadline(), Some(t1 + Duration::from_secs(40)));
        assert_eq!(
            w.on_deadline(t1 + Duration::from_secs(40)),
            Action::Close(Expiry::HeaderRead)
        );
    }
}
