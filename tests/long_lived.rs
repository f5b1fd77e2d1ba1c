//! Long-lived connections end with their session, against the real binary
//! and the real upstream: a WebSocket (spliced) and a streaming response
//! (the upstream's endless `/trickle`) of a session revoked with
//! `portcullis revoke` are closed while another session's stay open, and
//! both are closed when the session reaches its end of life mid-stream.
//! Connections let in by a passthrough token or path are not sessions and
//! stay open.

mod common;

use std::time::{Duration, Instant};

use common::revocation::{login, metric, revoke};
use common::{
    Gate, TestUpstream, alice, base_yaml, bob, client, echo_behind_gate, get_with_headers,
    mint_cookie,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a close may take to reach the client: "within a few seconds".
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

async fn websocket(gate: &Gate, cookie: &str) -> Ws {
    websocket_with(gate, "cookie", cookie).await
}

/// A WebSocket to the upstream's echo, with one credential header.
async fn websocket_with(gate: &Gate, header: &'static str, value: &str) -> Ws {
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}/ws",
        gate.addr
    ))
    .unwrap();
    req.headers_mut().insert(header, value.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade through portcullis");
    assert_eq!(resp.status(), 101);
    ws
}

/// One message there and back: the tunnel is open.
async fn echo(ws: &mut Ws, msg: &str) -> Result<(), String> {
    ws.send(Message::text(msg))
        .await
        .map_err(|e| format!("send: {e}"))?;
    match tokio::time::timeout(CLOSE_DEADLINE, ws.next()).await {
        Ok(Some(Ok(back))) if back.to_text().ok() == Some(msg) => Ok(()),
        other => Err(format!("no echo of {msg:?}: {other:?}")),
    }
}

/// Waits for the tunnel to close under the client: the next read is the
/// end of the TCP stream without a closing handshake (Portcullis drops
/// both sockets; it cannot speak WebSocket inside a spliced tunnel).
async fn closed(ws: &mut Ws) -> Result<(), String> {
    match tokio::time::timeout(CLOSE_DEADLINE, ws.next()).await {
        Ok(Some(Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )))) => Ok(()),
        Err(_) => Err(format!("still open after {CLOSE_DEADLINE:?}")),
        Ok(other) => Err(format!("unexpected read: {other:?}")),
    }
}

type Chunks = std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>>>>;

/// `/trickle` through the gate: `tick N` every 100 ms, never ending.
async fn stream(gate: &Gate, cookie: &str) -> Chunks {
    let resp = get_with_headers(
        &client(),
        gate.url("/trickle?ms=100"),
        &[("cookie", cookie), ("accept", "text/plain")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut chunks: Chunks = Box::pin(resp.bytes_stream());
    next_tick(&mut chunks).await.expect("the first tick");
    chunks
}

async fn next_tick(chunks: &mut Chunks) -> Result<String, String> {
    match tokio::time::timeout(CLOSE_DEADLINE, chunks.next()).await {
        Ok(Some(Ok(b))) if b.starts_with(b"tick ") => Ok(String::from_utf8_lossy(&b).into()),
        other => Err(format!("no tick: {other:?}")),
    }
}

/// Reads until the body stops; it must stop with an error (cut short, no
/// end of the chunked body), within the deadline.
async fn cut(chunks: &mut Chunks) -> Result<(), String> {
    let deadline = Instant::now() + CLOSE_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, chunks.next()).await {
            Err(_) => return Err(format!("still streaming after {CLOSE_DEADLINE:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) if e.is_body() || e.is_decode() => return Ok(()),
            Ok(other) => return Err(format!("the body ended, not cut: {other:?}")),
        }
    }
}

fn closes(gate: &Gate) -> Vec<(String, String, String)> {
    gate.events("connection_closed")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("user"), s("connection"), s("reason"))
        })
        .collect()
}

fn triple(user: &str, connection: &str, reason: &str) -> (String, String, String) {
    (user.into(), connection.into(), reason.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_sessions_websocket_is_closed_and_another_sessions_stays_open() {
    let (_up, gate) = echo_behind_gate("").await;
    let (a, _) = login(&gate, &alice());
    let (b, _) = login(&gate, &bob());
    let mut alice_ws = websocket(&gate, &a).await;
    let mut bob_ws = websocket(&gate, &b).await;
    echo(&mut alice_ws, "alice before").await.unwrap();
    echo(&mut bob_ws, "bob before").await.unwrap();

    revoke(&gate, &["--user", "alice"]);

    let mut failures = Vec::new();
    if let Err(e) = closed(&mut alice_ws).await {
        failures.push(format!("alice's WebSocket: {e}"));
    }
    if let Err(e) = echo(&mut bob_ws, "bob after").await {
        failures.push(format!("bob's WebSocket: {e}"));
    }
    match tokio_tungstenite::connect_async({
        let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/ws",
            gate.addr
        ))
        .unwrap();
        req.headers_mut().insert("cookie", a.parse().unwrap());
        req
    })
    .await
    {
        Err(tungstenite::Error::Http(resp)) if resp.status() == 401 => {}
        other => failures.push(format!("alice reconnecting: {other:?}")),
    }
    let _ = bob_ws.close(None).await;
    assert!(failures.is_empty(), "{failures:#?}\nlog:\n{}", gate.log());
    assert_eq!(closes(&gate), vec![triple("alice", "websocket", "revoked")]);
    assert_eq!(
        metric(
            &gate,
            "portcullis_long_lived_closed_total{connection=\"websocket\",reason=\"revoked\"}"
        )
        .await,
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_sessions_streaming_response_is_cut_and_another_sessions_goes_on() {
    let (_up, gate) = echo_behind_gate("").await;
    let (a, alice_sid) = login(&gate, &alice());
    let (b, _) = login(&gate, &bob());
    let mut alice_stream = stream(&gate, &a).await;
    let mut bob_stream = stream(&gate, &b).await;

    revoke(&gate, &["--session", &alice_sid]);

    let mut failures = Vec::new();
    if let Err(e) = cut(&mut alice_stream).await {
        failures.push(format!("alice's stream: {e}"));
    }
    // Bob's goes on: ticks keep arriving after alice's was cut.
    for _ in 0..3 {
        if let Err(e) = next_tick(&mut bob_stream).await {
            failures.push(format!("bob's stream: {e}"));
            break;
        }
    }
    drop(bob_stream);
    assert!(failures.is_empty(), "{failures:#?}\nlog:\n{}", gate.log());
    assert_eq!(closes(&gate), vec![triple("alice", "stream", "revoked")]);
    assert_eq!(
        metric(
            &gate,
            "portcullis_long_lived_closed_total{connection=\"stream\",reason=\"revoked\"}"
        )
        .await,
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_expires_mid_stream_is_ended() {
    let up = TestUpstream::start().await;
    // The shortest lifetime the configuration allows; the session below
    // signed in 55 s ago, so it ends 5 s after the connections open.
    let yaml = base_yaml(&up.url(), "").replace(
        "session:\n",
        "session:\n  lifetime: 1m\n  inactivity_timeout: 0s\n",
    );
    let gate = Gate::start(&yaml);
    let mut end = 0;
    let cookie = mint_cookie(&gate.config_yaml, &gate.key_file(), &alice(), |c| {
        c.auth_time -= 55;
        c.iat = c.auth_time;
        c.exp = c.auth_time + 60;
        end = c.exp;
    });
    let mut ws = websocket(&gate, &cookie).await;
    echo(&mut ws, "before the end").await.unwrap();
    let mut chunks = stream(&gate, &cookie).await;

    let mut failures = Vec::new();
    if let Err(e) = closed(&mut ws).await {
        failures.push(format!("WebSocket: {e}"));
    }
    if let Err(e) = cut(&mut chunks).await {
        failures.push(format!("stream: {e}"));
    }
    let now = portcullis::session::now();
    if now < end {
        failures.push(format!("closed at {now}, before the session's end {end}"));
    }
    assert!(failures.is_empty(), "{failures:#?}\nlog:\n{}", gate.log());
    let mut got = closes(&gate);
    got.sort();
    assert_eq!(
        got,
        vec![
            triple("alice", "stream", "expired"),
            triple("alice", "websocket", "expired"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_passthrough_connections_are_not_bound_to_a_session() {
    let up = TestUpstream::start().await;
    let token = "pipeline-token-5e4d3c2b1a";
    let hash = hex::encode(portcullis::policy::tokens::sha256(token));
    let gate = Gate::start(&base_yaml(
        &up.url(),
        &format!(
            "passthrough:\n  paths:\n    - exact: /trickle\n  tokens:\n    - name: pipeline\n      sha256: {hash}\n"
        ),
    ));
    let (a, _) = login(&gate, &alice());
    let mut session_ws = websocket(&gate, &a).await;
    let mut token_ws = websocket_with(&gate, "authorization", &format!("Bearer {token}")).await;
    // Alice's cookie rides along, but a passthrough path is not hers.
    let mut passthrough = stream(&gate, &a).await;

    revoke(&gate, &["--all"]);

    let mut failures = Vec::new();
    if let Err(e) = closed(&mut session_ws).await {
        failures.push(format!("the session's WebSocket: {e}"));
    }
    if let Err(e) = echo(&mut token_ws, "token after").await {
        failures.push(format!("the token's WebSocket: {e}"));
    }
    for _ in 0..3 {
        if let Err(e) = next_tick(&mut passthrough).await {
            failures.push(format!("the passthrough stream: {e}"));
            break;
        }
    }
    let _ = token_ws.close(None).await;
    drop(passthrough);
    assert!(failures.is_empty(), "{failures:#?}\nlog:\n{}", gate.log());
    assert_eq!(closes(&gate), vec![triple("alice", "websocket", "revoked")]);
}
