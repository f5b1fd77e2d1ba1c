//! The metrics as an HTTP answer, and who may read them on the main
//! listener (`metrics.allowed_ip_ranges`, only when `metrics.listen` is
//! not set). It never records anything: the counters are the parent
//! module's.

use std::net::IpAddr;

use crate::config::Metrics;

/// `Content-Type` of the metrics answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics as an HTTP answer.
pub fn response() -> http::Response<crate::Body> {
    let mut resp = http::Response::new(crate::full_body(bytes::Bytes::from(super::render())));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Whether `client` may read metrics on the main listener.
pub fn allowed(settings: &Metrics, client: IpAddr) -> bool {
    settings.enabled
        && settings.listen.is_none()
        && settings
            .allowed_ip_ranges
            .iter()
            .any(|n| n.contains(&client.to_canonical()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_loopback_reads_metrics_on_the_main_listener() {
        let ok = crate::config::from_yaml_str(
            "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:3000\n",
        )
        .unwrap()
        .metrics;
        assert!(allowed(&ok, "127.0.0.1".parse().unwrap()));
        assert!(!allowed(&ok, "203.0.113.9".parse().unwrap()));
    }
}
