//! The upstream side: a pooled hyper client (TLS by rustls), request and
//! response bodies streamed both ways, WebSocket and other Upgrades spliced
//! through, and the header rules of [`headers`]. A WebSocket or a streaming
//! response of a session ends with it ([`session_bound`]).

mod bound_body;
pub mod headers;
pub mod session_bound;
pub(crate) mod tls;

use base64::Engine;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::Body;
use crate::config::Config;
use crate::identity::Identity;
use crate::request_ctx::RequestCtx;
pub use session_bound::SessionBound;
use session_bound::{Held, Watch};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream refused or dropped the connection")]
    Unreachable,
    #[error("the upstream did not answer within the timeout")]
    Timeout,
    #[error("the request cannot be forwarded: {0}")]
    BadRequest(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error("upstream.ca_file: {0}")]
    CaFile(String),
    #[error("cannot set up TLS for the upstream: {0}")]
    Tls(String),
}

/// Who is asking, as the forwarding step needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    pub ctx: RequestCtx<'a>,
    /// `None` on passthrough paths: no identity headers at all.
    pub identity: Option<&'a Identity>,
    /// `Authorization` carries a passthrough token: removed on every route.
    pub strip_authorization: bool,
    /// The signed identity assertion, header name and value.
    pub assertion: Option<(&'a http::HeaderName, &'a HeaderValue)>,
    /// The session that let the request in (`None` for passthrough paths
    /// and tokens): a WebSocket or streaming response ends with it.
    pub session: Option<&'a SessionBound>,
}

type Pooled = Client<HttpsConnector<HttpConnector>, Incoming>;

pub struct UpstreamClient {
    /// One pool per serving thread ([`crate::worker`]): an upstream
    /// connection is driven on the thread that opened it, and only requests
    /// of that thread use it.
    pools: Box<[Pooled]>,
    /// `scheme://authority` of the upstream.
    origin: String,
    /// Path prefix of the upstream URL, without a trailing `/`.
    base_path: String,
    authority: HeaderValue,
    /// Scheme and authority parsed once, to build the upstream URI from the
    /// request's already parsed path without formatting and parsing again.
    uri_base: Option<(http::uri::Scheme, http::uri::Authority)>,
}

impl UpstreamClient {
    pub fn new(config: &Config) -> Result<UpstreamClient, UpstreamSetupError> {
        let u = &config.upstream;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(u.connect_timeout));
        http.set_nodelay(true);
        let tls = tls::client_config(u.tls_verify, u.ca_file.as_deref())?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let pool = || {
            Client::builder(TokioExecutor::new())
                // Without a timer the idle timeout is never applied and idle
                // upstream connections stay open until the upstream closes them.
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(std::time::Duration::from_secs(90))
                // Each thread's idle connections are its share of the
                // connection cap, so all pools together stay within the
                // open files `connections::fit_to_fd_limit` planned for.
                .pool_max_idle_per_host(config.connections.max.div_ceil(crate::worker::count()))
                .build(https.clone())
        };
        let host = u.url.host_str().unwrap_or_default();
        let authority = match u.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(UpstreamClient {
            pools: (0..crate::worker::count()).map(|_| pool()).collect(),
            origin: format!("{}://{}", u.url.scheme(), authority),
            base_path: u.url.path().trim_end_matches('/').to_string(),
            uri_base: http::uri::Scheme::try_from(u.url.scheme())
                .ok()
                .zip(http::uri::Authority::try_from(authority.as_str()).ok()),
            authority: HeaderValue::from_str(&authority).map_err(|_| {
                UpstreamSetupError::Tls("upstream host is not a valid header".into())
            })?,
        })
    }

    /// Sends the request upstream and streams the answer back.
    pub async fn forward(
        &self,
        config: &Config,
        mut req: Request<Incoming>,
        fwd: Forward<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let upgrade_to = upgrade_protocol(&req);
        let client_upgrade = upgrade_to.as_ref().map(|_| hyper::upgrade::on(&mut req));

        self.rewrite_request(config, &mut req, &fwd, upgrade_to.as_ref())?;

        let mut resp =
            match tokio::time::timeout(config.upstream.timeout, self.pool().request(req)).await {
                Err(_) => return Err(ProxyError::Timeout),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "upstream request failed");
                    return Err(ProxyError::Unreachable);
                }
                Ok(Ok(r)) => r,
            };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // A 101 nobody asked for (or for another protocol) is not passed
            // on: the client would think it has a tunnel.
            let (Some(client_upgrade), Some(asked)) = (client_upgrade, upgrade_to.as_ref()) else {
                return Err(ProxyError::Unreachable);
            };
            if !switched_to(&resp, asked) {
                return Err(ProxyError::Unreachable);
            }
            {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let watch = fwd
                    .session
                    .map(|s| Watch::new(s.clone(), Held::WebSocket, fwd.ctx));
                tokio::spawn(async move {
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((c, u)) => {
                            let mut c = TokioIo::new(c);
                            let mut u = TokioIo::new(u);
                            let splice = tokio::io::copy_bidirectional(&mut c, &mut u);
                            match watch {
                                None => {
                                    let _ = splice.await;
                                }
                                // When the session ends first, both sockets
                                // are dropped: the client and the upstream
                                // see the connection close.
                                Some(watch) => tokio::select! {
                                    _ = splice => {}
                                    _ = watch.ended() => {}
                                },
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                    }
                });
            }
            // Keep Connection/Upgrade: the client needs them for the 101.
        } else {
            headers::remove_hop_by_hop(resp.headers_mut());
        }
        if config.upstream.strip_version_headers {
            resp.headers_mut().remove(header::SERVER);
            resp.headers_mut().remove("x-powered-by");
        }
        let resp = resp.map(|b| b.map_err(crate::BoxError::from).boxed_unsync());
        Ok(match fwd.session {
            Some(s)
                if resp.status() != StatusCode::SWITCHING_PROTOCOLS
                    && !resp.body().is_end_stream() =>
            {
                resp.map(|b| {
                    let watch = Watch::new(s.clone(), Held::Stream, fwd.ctx);
                    bound_body::BoundBody::new(b, watch).boxed_unsync()
                })
            }
            _ => resp,
        })
    }

    /// This thread's pool.
    fn pool(&self) -> &Pooled {
        &self.pools[crate::worker::index() % self.pools.len()]
    }

    /// Turns the client's request into the upstream's, in place: target URI,
    /// HTTP/1.1, hop-by-hop headers and Portcullis' cookies and tokens out,
    /// `X-Forwarded-*`, `Host`, `X-Request-Id` and identity headers in.
    /// Generic over the body so benchmarks can run it on a plain request.
    pub fn rewrite_request<B>(
        &self,
        config: &Config,
        req: &mut Request<B>,
        fwd: &Forward<'_>,
        upgrade_to: Option<&HeaderValue>,
    ) -> Result<(), ProxyError> {
        let uri = match (&self.uri_base, req.uri().path_and_query()) {
            // The common case: no base path, an origin-form target.
            (Some((scheme, authority)), Some(pq))
                if self.base_path.is_empty() && pq.as_str().starts_with('/') =>
            {
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(scheme.clone());
                parts.authority = Some(authority.clone());
                parts.path_and_query = Some(pq.clone());
                Uri::from_parts(parts)
                    .map_err(|_| ProxyError::BadRequest("the request path is not valid"))?
            }
            (_, pq) => {
                let path_and_query = pq.map_or("/", http::uri::PathAndQuery::as_str);
                format!("{}{}{}", self.origin, self.base_path, path_and_query)
                    .parse()
                    .map_err(|_| ProxyError::BadRequest("the request path is not valid"))?
            }
        };
        let client_host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });

        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        headers::remove_hop_by_hop(h);
        crate::session::cookies::strip_own_cookies(h, &config.session.base_cookie_name);
        h.remove(&config.passthrough.token_header);
        if fwd.strip_authorization {
            h.remove(header::AUTHORIZATION);
        }
        headers::set_forwarded(
            h,
            fwd.ctx.peer,
            fwd.ctx.peer_trusted,
            fwd.ctx.client_ip,
            config.scheme.as_str(),
            client_host.as_ref(),
        );
        match (&client_host, config.upstream.preserve_host) {
            (Some(host), true) => {
                h.insert(header::HOST, host.clone());
            }
            _ => {
                h.insert(header::HOST, self.authority.clone());
            }
        }
        // Ours, not the client's: the id in the upstream's log is the one
        // on Portcullis' log lines and pages.
        if let Ok(v) = HeaderValue::from_str(fwd.ctx.request_id) {
            h.insert("x-request-id", v);
        }
        if let Some((name, value)) = fwd.assertion {
            h.insert(name.clone(), value.clone());
        }
        if let Some(id) = fwd.identity {
            headers::set_identity(h, config, id).map_err(|_| {
                ProxyError::BadRequest("an identity value cannot be sent as a header")
            })?;
            if let Some(v) = basic_credentials(config, id) {
                h.insert(header::AUTHORIZATION, v);
            }
        }
        if let Some(proto) = upgrade_to {
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, proto.clone());
        }

        Ok(())
    }
}

/// `Authorization: Basic user:password` for `upstream.basic_auth`, with the
/// signed-in user's name.
pub fn basic_credentials(config: &Config, id: &Identity) -> Option<HeaderValue> {
    let basic = config.upstream.basic_auth.as_ref()?;
    let cred =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", id.user, basic.password));
    HeaderValue::from_str(&format!("Basic {cred}")).ok()
}

/// The one Upgrade Portcullis passes on: a WebSocket handshake (a GET with
/// `Connection: upgrade` and `Upgrade: websocket`). Any other protocol
/// (`h2c` above all) would open a raw tunnel in which further requests reach
/// the upstream without passing the gate, so it is dropped like any other
/// hop-by-hop header.
fn upgrade_protocol(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.method() != http::Method::GET {
        return None;
    }
    let wants = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let mut upgrades = req.headers().get_all(header::UPGRADE).iter();
    match (wants, upgrades.next(), upgrades.next()) {
        (true, Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"websocket") => Some(v.clone()),
        _ => None,
    }
}

/// A 101 is spliced only when it switches to the protocol asked for.
fn switched_to(resp: &Response<Incoming>, asked: &HeaderValue) -> bool {
    resp.headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(asked.as_bytes()))
}
