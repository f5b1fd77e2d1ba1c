//! What a request asks for, read once: method, target (as the app will
//! receive it), the host names it carries, its headers, and who sent it.

use http::{HeaderMap, Method, Request, header};

use super::original::{self, Original, OriginalError};
use crate::config::HeaderFamily;
use crate::request_ctx::RequestCtx;

/// Which way the request reached Portcullis. In proxy mode Portcullis
/// serves its own endpoints and forwards the rest; in forward-auth mode
/// the front proxy serves everything, so every path is the app's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Proxy,
    ForwardAuth,
}

/// The request target, in the form that is forwarded (proxy mode) or that
/// the front proxy forwards (forward-auth mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Origin-form, or the path of an absolute-form target: the raw path
    /// and query, byte for byte what the app gets.
    Path {
        path: &'a str,
        query: Option<&'a str>,
    },
    /// Asterisk-form (`OPTIONS *`).
    Asterisk,
    /// Authority-form (`CONNECT host:port`).
    Authority,
    /// Forward-auth: the front proxy's description could not be believed.
    Unreadable(OriginalError),
}

impl Target<'_> {
    /// Path and query, for the way back after sign-in.
    pub fn path_and_query(&self) -> String {
        match self {
            Target::Path { path, query: None } => (*path).to_string(),
            Target::Path {
                path,
                query: Some(q),
            } => format!("{path}?{q}"),
            _ => "/".to_string(),
        }
    }
}

/// The host names a request carries: its `Host` header (every copy) and
/// the authority of an absolute-form target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNames<'a> {
    /// `None` for a copy that is not text.
    pub header: Vec<Option<&'a str>>,
    pub authority: Option<&'a str>,
}

/// A request as the decision sees it.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    pub mode: Mode,
    pub method: Method,
    pub target: Target<'a>,
    pub hosts: HostNames<'a>,
    /// The request's headers (cookies, credentials, `Accept`…). In
    /// forward-auth mode, those of the front proxy's question, which are
    /// the client's.
    pub headers: &'a HeaderMap,
    pub ctx: RequestCtx<'a>,
}

impl<'a> Asked<'a> {
    /// A request Portcullis received to forward.
    pub fn proxied<B>(req: &'a Request<B>, ctx: RequestCtx<'a>) -> Asked<'a> {
        let uri = req.uri();
        let target = if req.method() == Method::CONNECT {
            Target::Authority
        } else if uri.path() == "*" && uri.authority().is_none() {
            Target::Asterisk
        } else {
            Target::Path {
                path: uri.path(),
                query: uri.query(),
            }
        };
        Asked {
            mode: Mode::Proxy,
            method: req.method().clone(),
            target,
            hosts: HostNames {
                header: host_headers(req.headers(), header::HOST.as_str()),
                authority: uri.authority().map(http::uri::Authority::as_str),
            },
            headers: req.headers(),
            ctx,
        }
    }

    /// A forward-auth question about the request `orig` describes (read
    /// with [`Original::read`]); the rest is the client's request, as the
    /// front proxy copied it.
    pub fn forward_auth<B>(
        req: &'a Request<B>,
        family: HeaderFamily,
        orig: &'a Result<Original, OriginalError>,
        ctx: RequestCtx<'a>,
    ) -> Asked<'a> {
        let headers = req.headers();
        let (method, target, authority) = match orig {
            Ok(o) => (o.method.clone(), o.target(), o.authority.as_deref()),
            Err(e) => (Method::GET, Target::Unreadable(e.clone()), None),
        };
        Asked {
            mode: Mode::ForwardAuth,
            method,
            target,
            hosts: HostNames {
                header: host_headers(headers, original::names(family).host),
                authority,
            },
            headers,
            ctx,
        }
    }
}

fn host_headers<'h>(headers: &'h HeaderMap, name: &str) -> Vec<Option<&'h str>> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn ctx() -> RequestCtx<'static> {
        RequestCtx {
            request_id: "t",
            // A client connecting directly: no proxy vouches for it.
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            peer_trusted: false,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    fn req(method: &str, target: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(target)
            .header("host", "app.test")
            .body(())
            .unwrap()
    }

    #[test]
    fn targets_of_each_form() {
        let r = req("GET", "/a/../b?x=1");
        let a = Asked::proxied(&r, ctx());
        assert_eq!(
            a.target,
            Target::Path {
                path: "/a/../b",
                query: Some("x=1")
            }
        );
        assert_eq!(a.target.path_and_query(), "/a/../b?x=1");
        let r = req("GET", "http://other.test/admin/../x");
        let a = Asked::proxied(&r, ctx());
        assert_eq!(
            a.target,
            Target::Path {
                path: "/admin/../x",
                query: None
            }
        );
        assert_eq!(a.hosts.authority, Some("other.test"));
        assert_eq!(a.hosts.header, vec![Some("app.test")]);
        let r = req("OPTIONS", "*");
        assert_eq!(Asked::proxied(&r, ctx()).target, Target::Asterisk);
        let r = req("CONNECT", "app.test:443");
        assert_eq!(Asked::proxied(&r, ctx()).target, Target::Authority);
    }
}
