//! Which request this is and who sent it, read once at the start of
//! `server::App::handle` and borrowed by everything after it: the decision
//! (`gate::Asked`), audit events, the IdP flavours (`idp::LoginCtx`) and
//! forwarding (`proxy::Forward`). It must never be built from anything a
//! client can set except through `access.trusted_proxies`.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use crate::policy::client_ip;

/// The request id and the addresses of one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestCtx<'a> {
    /// On every log line, page and `X-Request-Id` of this request.
    pub request_id: &'a str,
    /// The TCP peer (IPv4-mapped IPv6 read as IPv4).
    pub peer: IpAddr,
    /// `peer` is one of `access.trusted_proxies`.
    pub peer_trusted: bool,
    /// The client address after trusted proxies (`policy::client_ip`).
    pub client_ip: IpAddr,
}

impl<'a> RequestCtx<'a> {
    /// Reads the addresses of a request whose spoofed headers are already
    /// stripped (step 3 of the request flow, docs/design.md).
    pub fn read(
        request_id: &'a str,
        peer: IpAddr,
        headers: &HeaderMap,
        trusted_proxies: &[IpNet],
    ) -> RequestCtx<'a> {
        let peer = peer.to_canonical();
        RequestCtx {
            request_id,
            peer,
            peer_trusted: client_ip::is_trusted(peer, trusted_proxies),
            client_ip: client_ip::client_ip(peer, headers, trusted_proxies),
        }
    }
}
