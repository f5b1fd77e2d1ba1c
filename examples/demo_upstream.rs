//! A tiny app for the demo: it knows nothing about sign-in and just shows
//! the identity headers Portcullis adds. `/public/` is served to anyone.
//!
//! Usage: demo_upstream 127.0.0.1:4182

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let path = req.uri().path().to_string();
    let body = if path.starts_with("/public/") {
        "<h1>A public page</h1><p>Passthrough path: no sign-in needed, no identity headers.</p>"
            .to_string()
    } else {
        let rows: String = req
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-forwarded-") || k.as_str() == "x-real-ip")
            .map(|(k, v)| {
                format!(
                    "<tr><th>{}</th><td>{}</td></tr>",
                    esc(k.as_str()),
                    esc(&String::from_utf8_lossy(v.as_bytes()))
                )
            })
            .collect();
        format!(
            "<h1>Hello, {}</h1><p>This app has no sign-in code. Portcullis logged you in and sent these headers:</p>\
             <table>{rows}</table><p><a href=\"/public/info\">a public page</a> · <a href=\"/.portcullis/logout\">sign out</a></p>",
            esc(&header("x-forwarded-name")
                .or_else(|| header("x-forwarded-user"))
                .unwrap_or_else(|| "stranger".into()))
        )
    };
    let html = format!(
        "<!doctype html><meta charset=utf-8><title>Demo app</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto}}th{{text-align:left;padding-right:1rem}}</style>{body}"
    );
    Ok(Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(html)))
        .unwrap_or_default())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4182".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("demo app listening on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
