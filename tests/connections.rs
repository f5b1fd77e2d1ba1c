//! Client connections against the real binary: a client that sends half a
//! request's headers is closed within the header timeout, a kept-alive
//! connection after the idle timeout, both over HTTP/1.1 and HTTP/2; a
//! WebSocket outlives both; at most `connections.max` connections are
//! served at once and the rest after; connections are served on one thread
//! per CPU; the keys are validated.
//!
//! Closes are waited for with a bound, never slept for.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cases::Cases;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Generous bound for anything that should happen within a few seconds.
const BOUND: Duration = Duration::from_secs(15);

fn yaml(upstream: &str, header: &str, idle: &str) -> String {
    base_yaml(
        upstream,
        &format!(
            "passthrough:\n  paths:\n    - prefix: /public/\nconnections:\n  header_read_timeout: {header}\n  idle_timeout: {idle}\n"
        ),
    )
}

/// Reads until the peer closes (EOF or reset), within `BOUND`; returns the
/// time it took and what was received.
async fn wait_closed(s: &mut TcpStream) -> Result<(Duration, Vec<u8>), String> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + BOUND).into(), s.read(&mut buf)).await {
            Err(_) => {
                return Err(format!(
                    "still open after {BOUND:?}; received {:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
            Ok(Ok(0) | Err(_)) => return Ok((started.elapsed(), got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` body.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return String::from_utf8_lossy(&got[..end + 4 + len]).to_string();
            }
        }
        let n = tokio::time::timeout(BOUND, s.read(&mut buf))
            .await
            .expect("response within the bound")
            .expect("read");
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// A connection that sent half a request's headers, closed by the gate
/// after about `header_read_timeout`: the event that shows that much time
/// has passed, for tests that need it to.
async fn half_header_closed(gate: &Gate) -> Duration {
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-Slow: ")
        .await
        .unwrap();
    wait_closed(&mut s).await.expect("closed").0
}

#[tokio::test]
async fn slow_headers_are_closed_within_the_header_timeout() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&yaml(&up.url(), "1s", "30s"));
    let mut cases = Cases::new();

    // Nothing at all, half a request line, half the headers, the HTTP/2
    // preface alone, and headers trickling in a byte at a time.
    for (name, bytes) in [
        ("nothing", &b""[..]),
        ("half a request line", b"GET /public/x HT"),
        (
            "half the headers",
            b"GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-Slow: ",
        ),
        (
            "an HTTP/2 preface alone",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ),
    ] {
        let mut s = TcpStream::connect(gate.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        match wait_closed(&mut s).await {
            Ok((took, got)) => {
                cases.check(name, took >= Duration::from_millis(900), || {
                    format!("closed after {took:?}, before the timeout")
                });
                cases.check(name, !got.starts_with(b"HTTP/1.1 2"), || {
                    format!("answered {:?}", String::from_utf8_lossy(&got))
                });
            }
            Err(e) => cases.check(name, false, || e),
        }
    }

    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    let trickle = tokio::spawn(async move {
        for b in b"GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-Slow: 1234567890" {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_closed(&mut s).await
    });
    if let Err(e) = trickle.await.unwrap() {
        cases.check("trickling headers", false, || e);
    }
    cases.finish();

    // A client that sends its request at once is served as before.
    let r = client().get(gate.url("/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = get_text(&client(), gate.url("/.portcullis/metrics")).await;
    assert!(
        metrics
            .contains("portcullis_connections_timed_out_total{reason=\"header_read_timeout\"} 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout_not_before() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&yaml(&up.url(), "1s", "3s"));
    let request = b"GET /public/x HTTP/1.1\r\nHost: app.test\r\n\r\n";

    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    // Longer than the header timeout passes with the connection idle...
    half_header_closed(&gate).await;
    // ...and it still serves the next request.
    s.write_all(request).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    let (took, got) = wait_closed(&mut s).await.expect("idle connection closed");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(took >= Duration::from_millis(2500), "closed after {took:?}");

    // HTTP/2 (prior knowledge): the same idle timeout; the client's PINGs
    // every 300 ms neither start the header clock nor keep it open.
    let tcp = TcpStream::connect(gate.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(300))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/public/x", gate.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.expect("h2 response");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    let idle_from = Instant::now();
    // The gate sends GOAWAY and closes; the client may still be writing
    // its acknowledgement then (a broken pipe on its side), which is fine:
    // what counts is that the connection ended, and when.
    let ended = tokio::time::timeout(BOUND, driver).await;
    assert!(
        matches!(ended, Ok(Ok(_))),
        "h2 connection closed by the gate: {ended:?}"
    );
    let took = idle_from.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "h2 closed after {took:?}"
    );
}

#[tokio::test]
async fn a_websocket_outlives_both_timeouts() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&yaml(&up.url(), "1s", "1s"));
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ws", gate.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("cookie", gate.session_cookie(&alice()).parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("before")).await.unwrap();
    let back = tokio::time::timeout(BOUND, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), "before");

    // Twice the header and idle timeouts pass with the tunnel silent.
    half_header_closed(&gate).await;
    half_header_closed(&gate).await;

    ws.send(Message::text("after"))
        .await
        .expect("tunnel still open");
    let back = tokio::time::timeout(BOUND, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), "after");
    ws.close(None).await.unwrap();
}

/// An upstream that holds every request until released, counting how many
/// it holds at once.
struct HoldingUpstream {
    addr: std::net::SocketAddr,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    release: Arc<(AtomicBool, tokio::sync::Notify)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HoldingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HoldingUpstream {
    async fn start() -> HoldingUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let release = Arc::new((AtomicBool::new(false), tokio::sync::Notify::new()));
        let (n, m, sv, r) = (now.clone(), most.clone(), served.clone(), release.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (n, m, sv, r) = (n.clone(), m.clone(), sv.clone(), r.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let (n, m, sv, r) = (n.clone(), m.clone(), sv.clone(), r.clone());
                        async move {
                            let held = n.fetch_add(1, Ordering::SeqCst) + 1;
                            m.fetch_max(held, Ordering::SeqCst);
                            while !r.0.load(Ordering::SeqCst) {
                                let notified = r.1.notified();
                                if r.0.load(Ordering::SeqCst) {
                                    break;
                                }
                                notified.await;
                            }
                            n.fetch_sub(1, Ordering::SeqCst);
                            sv.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"held"),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        HoldingUpstream {
            addr,
            now,
            most,
            served,
            release,
            task,
        }
    }
}

/// The names of the process's threads, from `/proc`.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn connections_are_served_on_one_thread_per_cpu() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&yaml(&up.url(), "10s", "60s"));
    let cpus = std::thread::available_parallelism().unwrap().get();
    // Whichever thread the kernel hands each connection to, it is served
    // (and once a request was answered, the serving threads are up).
    let mut clients = Vec::new();
    for _ in 0..(4 * cpus) {
        let addr = gate.addr;
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.test\r\n\r\n")
                .await
                .unwrap();
            read_response(&mut s).await
        }));
    }
    for c in clients {
        let head = tokio::time::timeout(BOUND, c).await.unwrap().unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let serving: Vec<String> = thread_names(gate.pid())
        .into_iter()
        .filter(|n| n.starts_with("portcullis-"))
        .collect();
    let expected: Vec<String> = {
        let mut e: Vec<String> = (0..cpus).map(|i| format!("portcullis-{i}")).collect();
        e.sort();
        e
    };
    assert_eq!(serving, expected, "one serving thread per CPU");
}

#[tokio::test]
async fn at_most_max_connections_are_served_at_once_and_the_rest_after() {
    const MAX: usize = 20;
    const CLIENTS: usize = 60;
    let up = HoldingUpstream::start().await;
    let gate = Gate::start(&base_yaml(
        &format!("http://{}", up.addr),
        &format!("passthrough:\n  paths:\n    - prefix: /\nconnections:\n  max: {MAX}\n"),
    ));
    let written = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (addr, written) = (gate.addr, written.clone());
        clients.push(tokio::spawn(async move {
            let mut s = match TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => return Err(format!("client {i}: connect refused: {e}")),
            };
            let req = format!("GET /c/{i} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
            if let Err(e) = s.write_all(req.as_bytes()).await {
                return Err(format!("client {i}: write failed: {e}"));
            }
            written.fetch_add(1, Ordering::SeqCst);
            let mut answer = Vec::new();
            match tokio::time::timeout(BOUND * 2, s.read_to_end(&mut answer)).await {
                Ok(Ok(_)) => Ok(String::from_utf8_lossy(&answer).to_string()),
                Ok(Err(e)) => Err(format!("client {i}: reset: {e}")),
                Err(_) => Err(format!("client {i}: no answer")),
            }
        }));
    }
    // Every client has connected and sent its request, and the gate has
    // passed MAX of them on...
    let deadline = Instant::now() + BOUND;
    while written.load(Ordering::SeqCst) < CLIENTS || up.now.load(Ordering::SeqCst) < MAX {
        assert!(
            Instant::now() < deadline,
            "written {}, held upstream {}",
            written.load(Ordering::SeqCst),
            up.now.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and no more: give the gate ample time to (wrongly) pass on more.
    // This is a bounded observation of an absence, not a synchronisation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held_at_most = up.most.load(Ordering::SeqCst);
    up.release.0.store(true, Ordering::SeqCst);
    up.release.1.notify_waiters();

    let mut served = 0;
    let mut refused = Vec::new();
    for c in clients {
        match c.await.unwrap() {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") && answer.ends_with("held") => {
                served += 1;
            }
            Ok(answer) => refused.push(format!("unexpected answer: {answer:?}")),
            Err(e) => refused.push(e),
        }
    }
    assert_eq!(held_at_most, MAX, "connections served at once");
    assert_eq!(
        up.most.load(Ordering::SeqCst),
        MAX,
        "never more, later either"
    );
    // Beyond the cap, connections wait in the backlog: all are served.
    assert_eq!(served, CLIENTS, "refused or broken: {refused:?}");
    assert_eq!(up.served.load(Ordering::SeqCst), CLIENTS);

    // The process is alive and healthy, and says what its cap is.
    assert_health_ok(gate.url("/.portcullis/health")).await;
    // Once the clients' connections have closed, the gauge counts only
    // the scraper's own (one kept-alive connection): waited for, since a
    // close reaches the gate a moment after the client drops it.
    let scraper = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = get_text(&scraper, gate.url("/.portcullis/metrics")).await;
        if metrics
            .lines()
            .any(|l| l == "portcullis_connections_open 1")
        {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "open connections never fell to the scraper's one:\n{metrics}"
        );
        tokio::task::yield_now().await;
    };
    assert!(
        metrics
            .lines()
            .any(|l| l == "portcullis_connections_max 20"),
        "{metrics}"
    );
}

#[test]
fn check_config_refuses_absurd_connection_limits() {
    let mut cases = Cases::new();
    for (extra, field) in [
        ("connections:\n  max: 0\n", "connections.max:"),
        ("connections:\n  max: 100000000\n", "connections.max:"),
        (
            "connections:\n  header_read_timeout: 0s\n",
            "connections.header_read_timeout:",
        ),
        (
            "connections:\n  header_read_timeout: 500ms\n",
            "connections.header_read_timeout:",
        ),
        (
            "connections:\n  header_read_timeout: 2h\n",
            "connections.header_read_timeout:",
        ),
        (
            "connections:\n  idle_timeout: 0s\n",
            "connections.idle_timeout:",
        ),
        (
            "connections:\n  idle_timeout: 30d\n",
            "connections.idle_timeout:",
        ),
        ("connections:\n  max_conns: 5\n", "connections.max_conns:"),
        ("headers:\n  strip: ['*']\n", "headers.strip[0]:"),
        ("headers:\n  strip: ['X-*-User']\n", "headers.strip[0]:"),
        ("headers:\n  strip: [Cookie]\n", "headers.strip[0]:"),
        (
            "headers:\n  strip: [ok-name, 'X-Forwarded-*']\n",
            "headers.strip[1]:",
        ),
        (
            "headers:\n  strip: ['X-Portcullis-*']\n",
            "headers.strip[0]:",
        ),
    ] {
        let out = check_config_with(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        cases.check(
            format!("{extra:?}"),
            !out.status.success() && err.contains(field),
            || format!("exit {:?}, {err}", out.status.code()),
        );
    }
    cases.finish();
}
