//! Client connections: at most `connections.max` served at once (the rest
//! wait in the kernel's listen backlog, so the process never runs out of
//! file descriptors), each served by hyper (HTTP/1.1 or HTTP/2, WebSocket
//! upgrades included) under a watchdog that closes it when the client takes
//! too long to send a request's headers or sits idle too long (see
//! [`activity`]). Graceful shutdown: stop accepting, let in-flight requests
//! finish within `shutdown_timeout`.

mod activity;
mod fd_limit;
mod io;
mod tracked_body;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{Semaphore, watch};

pub use fd_limit::fit_to_fd_limit;

use crate::listen::{Acceptor, Listener};
use crate::server::App;
use activity::{Action, Activity, Watchdog};
use tracked_body::TrackedBody;

/// How often, at most, "connection limit reached" is logged.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The hyper server for every connection.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper's own HTTP/1 header timer also runs while a kept-alive
    // connection waits for its next request (capping keep-alive at the
    // header timeout), so the watchdog keeps both clocks instead; with a
    // timer set, hyper would otherwise start its own at 30 s.
    b.http1().timer(TokioTimer::new()).header_read_timeout(None);
    b.http2().timer(TokioTimer::new());
    b
}

/// Accepts connections until `shutdown` resolves, then waits (bounded by
/// `shutdown_timeout`) for in-flight requests to finish. Each request is
/// handled by the `App` in force when it arrives (`app` is swapped whole on
/// a configuration reload);
/// each connection keeps the timeouts in force when it was accepted.
/// `max` is fixed for the life of the process and shared by every thread.
///
/// Connections are accepted and served on one current-thread runtime per
/// core ([`crate::worker`]), each with its own copy of the listening
/// socket: the kernel hands a new connection to one of them, and the
/// connection, its requests and their upstream connections stay on that
/// thread. The runtime this is called in only coordinates.
pub async fn serve(
    app: Arc<ArcSwap<App>>,
    listener: Listener,
    max: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max));
    crate::metrics::connections_max(max);
    // Every connection holds a receiver: `closed` means all have ended.
    let (stop, stop_rx) = watch::channel(());
    // Each thread's accept loop holds a receiver until it has stopped.
    let (accepting, accepting_rx) = watch::channel(true);
    // Set once the drain is over: a thread's runtime, and with it the
    // connections it still serves, ends then.
    let (drained, drained_rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(crate::worker::count());
    for i in 0..crate::worker::count() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registered here, in the thread's runtime: a failure stops the
        // start instead of leaving a thread that never serves.
        let acceptor = {
            let _in_rt = rt.enter();
            listener.copy()?.register()?
        };
        let app = app.clone();
        let slots = slots.clone();
        let stop_rx = stop_rx.clone();
        let mut accepting_rx = accepting_rx.clone();
        let mut drained_rx = drained_rx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("portcullis-{i}"))
            .spawn(move || {
                crate::worker::set_index(i);
                rt.block_on(async move {
                    let stopped = async move {
                        let _ = accepting_rx.wait_for(|a| !*a).await;
                    };
                    accept(app, acceptor, max, slots, stop_rx, stopped).await;
                    let _ = drained_rx.wait_for(|d| *d).await;
                });
            })?;
        threads.push(thread);
    }
    drop((stop_rx, accepting_rx, drained_rx));

    shutdown.await;
    let _ = accepting.send(false);
    accepting.closed().await;
    drop(listener);
    tracing::info!("shutting down: no new connections, waiting for in-flight requests");
    let _ = stop.send(());
    let timeout = app.load().config.shutdown_timeout;
    tokio::select! {
        () = stop.closed() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(timeout) => tracing::warn!(?timeout, "shutdown timeout reached; closing remaining connections"),
    }
    let _ = drained.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    Ok(())
}

/// One thread's accept loop: until `stopped` resolves, a place under
/// `connections.max` first, then a connection, served in a task of this
/// thread's runtime.
async fn accept(
    app: Arc<ArcSwap<App>>,
    listener: Acceptor,
    max: usize,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<()>,
    stopped: impl Future<Output = ()>,
) {
    let builder = builder();
    let mut warned_full: Option<Instant> = None;
    let shutdown = stopped;
    tokio::pin!(shutdown);
    loop {
        // A place first, then the connection: beyond `max`, clients wait in
        // the listen backlog instead of costing a file descriptor here.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        if slots.available_permits() == 0
            && warned_full.is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY)
        {
            warned_full = Some(Instant::now());
            tracing::warn!(
                max,
                "connection limit reached: further connections wait in the listen backlog until one closes (connections.max)"
            );
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let limits = app.load().config.connections;
        let activity = Activity::new(Instant::now());
        let io = TokioIo::new(io::Watched::new(
            stream,
            activity.clone(),
            io::Slot::new(permit),
        ));
        let app = app.clone();
        let requests = activity.clone();
        let svc = service_fn(move |req| {
            let app = app.load_full();
            let in_flight = requests.request_started(req.version());
            // Boxed: hyper keeps a slot the size of this future for the
            // whole life of a connection, and the request's future is about
            // 7 kB; boxed, an idle keep-alive connection holds a pointer
            // instead (docs/performance.md, "Idle connections").
            Box::pin(async move {
                let resp = app.handle(req, peer).await;
                Ok::<_, Infallible>(resp.map(|b| TrackedBody::new(b, in_flight)))
            })
        });
        let conn = builder.serve_connection_with_upgrades(io, svc).into_owned();
        // A clone has not seen the stop signal even when it was sent
        // before this connection was accepted.
        let mut stopping = stop.clone();
        let mut watchdog = Watchdog::new(activity.clone(), limits);
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut shutting_down = false;
            loop {
                let deadline = watchdog.deadline();
                tokio::select! {
                    // The connection first: a graceful close that is
                    // already done must not be cut short by its deadline.
                    biased;
                    ended = conn.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stopping.changed(), if !shutting_down => {
                        shutting_down = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = activity.changed() => {}
                    () = sleep_until(deadline) => match watchdog.on_deadline(Instant::now()) {
                        Action::Wait => {}
                        Action::GracefulClose(why) => {
                            crate::metrics::connection_timed_out(why.label());
                            conn.as_mut().graceful_shutdown();
                        }
                        Action::Close(why) => {
                            crate::metrics::connection_timed_out(why.label());
                            tracing::debug!(%peer, reason = why.label(), "connection closed");
                            break;
                        }
                    },
                }
            }
            // Held until here: shutdown waits for this connection.
            drop(stopping);
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
