//! The proxy's plumbing end to end: WebSocket upgrade, streaming bodies with
//! bounded memory, upstream failures, graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let (_up, gate) = echo_behind_gate("").await;
    let cookie = gate.session_cookie(&alice());
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ws", gate.addr),
    )
    .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade through portcullis");
    assert_eq!(resp.status(), 101);
    for msg in ["hello", "through", "the gate"] {
        ws.send(Message::text(msg)).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();

    // Without a session, no upgrade.
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", gate.addr)).await;
    match err {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

const BIG: u64 = 200 * 1024 * 1024;
/// Generous: a buffering proxy would need at least the 200 MB body.
const RSS_BOUND_KB: u64 = 64 * 1024;

#[tokio::test]
async fn large_bodies_stream_with_small_memory() {
    let (_up, gate) = echo_behind_gate("").await;
    let cookie = gate.session_cookie(&alice());
    let c = client();

    // Download: read it as it arrives.
    let resp = get_with_headers(
        &c,
        gate.url(&format!("/download?bytes={BIG}")),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut got: u64 = 0;
    while let Some(chunk) = stream.next().await {
        got += chunk.unwrap().len() as u64;
    }
    assert_eq!(got, BIG);

    // Upload: generated on the fly, never held in memory by the test.
    let chunk = bytes::Bytes::from(vec![b'u'; 256 * 1024]);
    let n = BIG / chunk.len() as u64;
    let body_stream =
        futures_util::stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let resp = c
        .post(gate.url("/upload"))
        .header("cookie", &cookie)
        .body(reqwest::Body::wrap_stream(body_stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), BIG.to_string());

    let (rss, peak) = gate.rss_kb();
    eprintln!("portcullis RSS after 2 x 200 MB: {rss} kB, peak {peak} kB");
    assert!(
        peak < RSS_BOUND_KB,
        "peak RSS {peak} kB (now {rss} kB) suggests buffering"
    );
}

#[tokio::test]
async fn upstream_down_is_502_and_hanging_is_504() {
    // A port that nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gate = Gate::start(&base_yaml(&format!("http://{dead}"), ""));
    let cookie = gate.session_cookie(&alice());
    let r = get_with_headers(
        &client(),
        gate.url("/"),
        &[("cookie", &cookie), ("accept", BROWSER_ACCEPT)],
    )
    .await;
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("not responding"), "{body}");
    drop(gate);

    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), "").replace("timeout: 3s", "timeout: 1s"));
    let cookie = gate.session_cookie(&alice());
    let r = api_get(&client(), gate.url("/hang"), &cookie).await;
    assert_eq!(r.status(), 504);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "gateway_timeout");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let (up, mut gate) = echo_behind_gate("").await;
    let cookie = gate.session_cookie(&alice());
    let url = gate.url("/held");
    let inflight =
        tokio::spawn(async move { get_with_headers(&client(), url, &[("cookie", &cookie)]).await });
    // The request is at the upstream, waiting for the test to release it.
    up.wait_held(1).await;
    gate.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gate.log().contains("shutting down: no new connections") {
        assert!(
            Instant::now() < deadline,
            "no shutdown logged:\n{}",
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Draining: still running for the request in flight, and refusing new
    // connections meanwhile.
    assert_eq!(
        gate.server.try_exit(),
        None,
        "exited with a request in flight"
    );
    assert!(
        tokio::net::TcpStream::connect(gate.addr).await.is_err(),
        "a new connection was accepted after SIGTERM"
    );

    up.release_held();
    let resp = inflight.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "held done");
    let status = gate
        .wait_exit(Duration::from_secs(10))
        .expect("exits once the request in flight is done");
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 after SIGTERM; log:\n{}",
        gate.log()
    );
    assert!(
        gate.log().contains("all connections closed"),
        "drained, not cut off by the shutdown timeout:\n{}",
        gate.log()
    );
}

/// GETs `/x` through `gate` with alice's session cookie.
async fn get_x_as_alice(c: &reqwest::Client, gate: &Gate) -> reqwest::Response {
    get_with_headers(
        c,
        gate.url("/x"),
        &[("cookie", &gate.session_cookie(&alice()))],
    )
    .await
}

#[tokio::test]
async fn https_upstream_is_verified_unless_told_otherwise() {
    let (up, ca_pem) = TestUpstream::start_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let c = client();

    // Unknown CA: refused, 502.
    let gate = Gate::start(&base_yaml(&up.https_url(), ""));
    let r = get_with_headers(
        &c,
        gate.url("/"),
        &[("cookie", &gate.session_cookie(&alice()))],
    )
    .await;
    assert_eq!(
        r.status(),
        502,
        "an untrusted certificate must not be accepted"
    );
    drop(gate);

    // The CA file makes it trusted.
    let gate = Gate::start(&base_yaml(&up.https_url(), "").replace(
        "  timeout: 3s\n",
        &format!("  timeout: 3s\n  ca_file: {}\n", ca.display()),
    ));
    let r = get_x_as_alice(&c, &gate).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
    drop(gate);

    // Verification explicitly off.
    let gate = Gate::start(
        &base_yaml(&up.https_url(), "")
            .replace("  timeout: 3s\n", "  timeout: 3s\n  tls_verify: false\n"),
    );
    let r = get_x_as_alice(&c, &gate).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn only_websocket_upgrades_pass() {
    use tokio::io::AsyncWriteExt;
    let (_up, gate) = echo_behind_gate("passthrough:\n  paths:\n    - prefix: /public/\n").await;
    // An h2c (or any other) upgrade would open a raw tunnel past the gate:
    // it goes upstream as a plain request, and the client gets no 101.
    let mut s = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The whole echo, however it was segmented: what the upstream received.
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let got = v["headers"].as_object().unwrap();
    assert_eq!(v["uri"], "/public/x");
    for hop in ["upgrade", "http2-settings"] {
        assert!(!got.contains_key(hop), "the upstream saw {hop}: {v}");
    }
    let connection = got.get("connection").and_then(|c| c.as_str()).unwrap_or("");
    assert!(
        !connection.to_ascii_lowercase().contains("upgrade"),
        "Connection: {connection}"
    );
}

/// Reads one HTTP/1.1 response from `s`: the head, then a body of
/// `Content-Length` bytes (none for 101/204/304), bounded in time and size.
async fn read_response(s: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(buf.len() < 64 * 1024, "no end of head in 64 kB");
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .expect("a response head within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before the end of the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = if matches!(status, 101 | 204 | 304) {
        0
    } else {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("a Content-Length")
    };
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .expect("the whole body within 10 s")
            .unwrap();
        assert!(n > 0, "closed after {} of {length} body bytes", body.len());
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), length, "nothing after the body");
    (head, body)
}

/// An upstream that answers every request with `101 Switching Protocols`
/// and `Upgrade: <protocol>` (no Upgrade header when empty), whatever was
/// asked, then echoes anything that arrives as if it were a tunnel. Counts
/// the bytes it got after its 101.
struct SwitchingUpstream {
    addr: std::net::SocketAddr,
    tunnel_bytes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl SwitchingUpstream {
    async fn start(protocol: &'static str) -> SwitchingUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnel_bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = tunnel_bytes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if s.read(&mut b).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let upgrade = if protocol.is_empty() {
                        String::new()
                    } else {
                        format!("Upgrade: {protocol}\r\n")
                    };
                    let key = String::from_utf8_lossy(&head)
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("sec-websocket-key")
                                .then(|| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                        key.as_bytes(),
                    );
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n{upgrade}Sec-WebSocket-Accept: {accept}\r\n\r\n"
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        counter.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                        let _ = s.write_all(b"TUNNEL:").await;
                        let _ = s.write_all(&buf[..n]).await;
                    }
                });
            }
        });
        SwitchingUpstream {
            addr,
            tunnel_bytes,
            _task: task,
        }
    }
}

#[tokio::test]
async fn a_switch_the_client_did_not_ask_for_opens_no_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const WEBSOCKET: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    // (case, what the upstream switches to, extra request headers)
    let cases = [
        ("101 to a plain GET", "websocket", ""),
        ("101 to h2c when WebSocket was asked", "h2c", WEBSOCKET),
        (
            "101 without Upgrade when WebSocket was asked",
            "",
            WEBSOCKET,
        ),
        ("101 to a plain GET, h2c", "h2c", ""),
    ];
    let mut failures = Vec::new();
    for (name, protocol, extra) in cases {
        let up = SwitchingUpstream::start(protocol).await;
        let gate = Gate::start(&base_yaml(&format!("http://{}", up.addr), ""));
        let cookie = gate.session_cookie(&alice());
        let mut s = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
        let req = format!(
            "GET /app HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\nCookie: {cookie}\r\n{extra}\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut s).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let upgrade_header = head.to_ascii_lowercase().contains("\r\nupgrade:");
        if !head.starts_with("HTTP/1.1 502 ") || v["error"] != "bad_gateway" || upgrade_header {
            failures.push(format!("{name}: {head}{}", String::from_utf8_lossy(&body)));
            continue;
        }
        // The connection is still HTTP to the gate (or closed), never a
        // pipe to the upstream.
        let next = "GET /.portcullis/health HTTP/1.1\r\nHost: app.test\r\n\r\n";
        let mut after = Vec::new();
        if s.write_all(next.as_bytes()).await.is_ok() {
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(5);
            while !String::from_utf8_lossy(&after).contains(r#"{"status":"ok"}"#) {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, s.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => after.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
        }
        let after = String::from_utf8_lossy(&after).to_string();
        let health = after.starts_with("HTTP/1.1 200 ") && after.contains(r#"{"status":"ok"}"#);
        if !(health || after.is_empty()) || after.contains("TUNNEL") {
            failures.push(format!(
                "{name}: after the 502 the connection answered {after:?}"
            ));
        }
        let leaked = up.tunnel_bytes.load(std::sync::atomic::Ordering::SeqCst);
        if leaked != 0 {
            failures.push(format!(
                "{name}: {leaked} bytes reached the upstream after its 101"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The control: the same upstream, asked for WebSocket and switching to
    // WebSocket, is spliced through.
    let up = SwitchingUpstream::start("websocket").await;
    let gate = Gate::start(&base_yaml(&format!("http://{}", up.addr), ""));
    let mut s = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let req = format!(
        "GET /app HTTP/1.1\r\nHost: app.test\r\nCookie: {}\r\n{WEBSOCKET}\r\n",
        gate.session_cookie(&alice())
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < b"TUNNEL:ping".len() {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the tunnel answers")
            .unwrap();
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"TUNNEL:ping");
}
