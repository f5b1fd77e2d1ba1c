//! The proxy's plumbing end to end: WebSocket upgrade, streaming bodies with
//! bounded memory, upstream failures, graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), ""));
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
    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), ""));
    let cookie = gate.session_cookie(&alice());
    let c = client();

    // Download: read it as it arrives.
    let resp = c
        .get(gate.url(&format!("/download?bytes={BIG}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
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
    let r = client()
        .get(gate.url("/"))
        .header("cookie", &cookie)
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
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
    let up = TestUpstream::start().await;
    let mut gate = Gate::start(&base_yaml(&up.url(), ""));
    let cookie = gate.session_cookie(&alice());
    let url = gate.url("/held");
    let inflight = tokio::spawn(async move {
        client()
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    });
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

#[tokio::test]
async fn https_upstream_is_verified_unless_told_otherwise() {
    let (up, ca_pem) = TestUpstream::start_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let c = client();

    // Unknown CA: refused, 502.
    let gate = Gate::start(&base_yaml(&up.https_url(), ""));
    let r = c
        .get(gate.url("/"))
        .header("cookie", gate.session_cookie(&alice()))
        .send()
        .await
        .unwrap();
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
    let r = c
        .get(gate.url("/x"))
        .header("cookie", gate.session_cookie(&alice()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
    drop(gate);

    // Verification explicitly off.
    let gate = Gate::start(
        &base_yaml(&up.https_url(), "")
            .replace("  timeout: 3s\n", "  timeout: 3s\n  tls_verify: false\n"),
    );
    let r = c
        .get(gate.url("/x"))
        .header("cookie", gate.session_cookie(&alice()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn only_websocket_upgrades_pass() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(
        &up.url(),
        "passthrough:\n  paths:\n    - prefix: /public/\n",
    ));
    // An h2c (or any other) upgrade would open a raw tunnel past the gate:
    // it goes upstream as a plain request, and the client gets no 101.
    let mut s = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("\"upgrade\""),
        "the upstream saw no Upgrade: {answer}"
    );
}
