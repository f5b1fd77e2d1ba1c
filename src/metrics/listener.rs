//! The metrics-only listener on `metrics.listen`: a plain HTTP server on
//! its own address, which the public host never reaches. It serves the
//! metrics answer and nothing else; it never passes a request to the gate.

use std::time::Duration;

use super::answer::response;

/// Serves metrics alone on `metrics.listen`: `/metrics` and
/// `/.portcullis/metrics` answer, everything else is 404.
pub async fn serve_separate(listener: tokio::net::TcpListener) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let svc =
            hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let resp = match req.uri().path() {
                    "/metrics" | "/.portcullis/metrics" => response(),
                    _ => {
                        let mut r = http::Response::new(crate::full_body(
                            bytes::Bytes::from_static(b"not found: metrics are at /metrics\n"),
                        ));
                        *r.status_mut() = http::StatusCode::NOT_FOUND;
                        r
                    }
                };
                Ok::<_, std::convert::Infallible>(resp)
            });
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
