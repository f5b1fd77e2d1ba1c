//! Who the client is, as the upstream hears it. Every header that some
//! proxy, CDN or framework uses to carry the client's address is listed
//! here, and nowhere else.
//!
//! - The `X-Forwarded-*` family and `Forwarded` (RFC 7239) are what a front
//!   proxy sets. From a trusted proxy they are kept (`X-Forwarded-For`
//!   extended with the peer); from anyone else they are removed and
//!   Portcullis sets `X-Forwarded-For`, `-Proto` and `-Host` itself.
//! - [`NEVER_BELIEVED`] are removed from every request, a trusted proxy's
//!   included: nginx in front passes a client's `True-Client-IP` along
//!   untouched, so its being trusted says nothing about them. `X-Real-IP`
//!   is then set by Portcullis to the client address it worked out; an app
//!   that wants the client's address reads that or `X-Forwarded-For`.
//! - Spellings no proxy sends (`X_Forwarded_For`, `HTTP_X_FORWARDED_FOR`)
//!   are removed from everyone, whatever the family: backends that map `_`
//!   to `-`, or look a CGI variable name up as a header, would believe them.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Name prefixes of the family a trusted proxy sets.
pub const FAMILY_PREFIXES: &[&str] = &["x-forwarded-"];

/// Exact names of the family a trusted proxy sets.
pub const FAMILY_EXACT: &[&str] = &["forwarded"];

/// Client-address headers Portcullis never passes on, from anyone. Each
/// line says who sets or reads it.
pub const NEVER_BELIEVED: &[&str] = &[
    // Set by Portcullis from the client address it worked out.
    "x-real-ip",
    // Akamai, Cloudflare Enterprise; read by request-ip (npm) and others.
    "true-client-ip",
    // Cloudflare.
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "cf-pseudo-ipv4",
    // Fastly.
    "fastly-client-ip",
    // request-ip, django-ipware, Rails (`Client-Ip`), PHP `HTTP_CLIENT_IP`.
    "x-client-ip",
    "client-ip",
    // Rackspace, Riverbed Stingray.
    "x-cluster-client-ip",
    // Microsoft Exchange/Outlook web front ends, mail-style gateways.
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "remote-addr",
    // Google's proxies.
    "x-proxyuser-ip",
    // The usual Java `getClientIp` helpers (WebLogic plug-in, Apache).
    "proxy-client-ip",
    "wl-proxy-client-ip",
    // Squid and the pre-RFC 7239 spellings django-ipware reads.
    "x-forwarded",
    "forwarded-for",
    // ingress-nginx keeps the original X-Forwarded-For here.
    "x-original-forwarded-for",
    // DigitalOcean App Platform.
    "do-connecting-ip",
    // Google App Engine.
    "x-appengine-user-ip",
    // Azure Front Door, IIS Application Request Routing.
    "x-azure-clientip",
    "x-azure-socketip",
    "x-arr-clientip",
    // Envoy.
    "x-envoy-external-address",
    // AWS CloudFront.
    "cloudfront-viewer-address",
    // Fly.io, Netlify, Vercel.
    "fly-client-ip",
    "x-nf-client-connection-ip",
    "x-vercel-forwarded-for",
    // Imperva Incapsula, Sucuri.
    "incap-client-ip",
    "x-sucuri-clientip",
];

/// Sets `X-Forwarded-For/-Proto/-Host` and `X-Real-IP`. A trusted proxy's
/// values are kept (its `X-Forwarded-For` extended); anyone else's removed,
/// with the whole family and `Forwarded`, and replaced by Portcullis' own.
/// Runs after `StripRules::strip_spoofed`, which already removed the names
/// in [`NEVER_BELIEVED`] and the spellings no proxy sends.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    peer_trusted: bool,
    client_ip: IpAddr,
    scheme: &str,
    host: Option<&HeaderValue>,
) {
    let xff = if peer_trusted {
        let prior: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if prior.is_empty() {
            peer.to_string()
        } else {
            format!("{}, {}", prior.join(", "), peer)
        }
    } else {
        remove_family(headers);
        peer.to_string()
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
        );
    }
    if !headers.contains_key("x-forwarded-host")
        && let Some(h) = host
    {
        headers.insert("x-forwarded-host", h.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&client_ip.to_string()) {
        headers.insert("x-real-ip", v);
    }
}

/// Removes every `X-Forwarded-*` and `Forwarded`. Names are already lower
/// case, and other spellings are gone by now.
fn remove_family(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let n = k.as_str();
            FAMILY_PREFIXES.iter().any(|p| n.starts_with(p)) || FAMILY_EXACT.contains(&n)
        })
        .cloned()
        .collect();
    for n in doomed {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_forwarded_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.insert("x-forwarded-proto", "http".parse().unwrap());
        h.insert("x-forwarded-prefix", "//evil.example".parse().unwrap());
        h.insert("forwarded", "for=10.0.0.1".parse().unwrap());
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        set_forwarded(&mut h, peer, false, peer, "https", None);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-real-ip"], "192.0.2.1");
        assert!(h.get("x-forwarded-prefix").is_none());
        assert!(h.get("forwarded").is_none());
    }

    #[test]
    fn a_trusted_proxy_chain_is_extended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        h.insert("forwarded", "for=203.0.113.9".parse().unwrap());
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        set_forwarded(&mut h, peer, true, client, "https", None);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
        assert_eq!(h["forwarded"], "for=203.0.113.9");
    }

    #[test]
    fn the_lists_are_canonical_and_disjoint() {
        for n in NEVER_BELIEVED
            .iter()
            .chain(FAMILY_EXACT)
            .chain(FAMILY_PREFIXES)
        {
            assert_eq!(*n, n.to_ascii_lowercase().replace('_', "-"), "{n}");
        }
        for n in NEVER_BELIEVED {
            assert!(
                !FAMILY_PREFIXES.iter().any(|p| n.starts_with(p)) && !FAMILY_EXACT.contains(n),
                "{n} is in both lists"
            );
        }
    }

    #[test]
    fn the_host_is_forwarded_unless_a_trusted_proxy_already_did() {
        let host: HeaderValue = "app.example.com".parse().unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        // Nobody said: the request's Host.
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, peer, true, peer, "https", Some(&host));
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        // A client's own claim is replaced.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", "evil.example".parse().unwrap());
        set_forwarded(&mut h, peer, false, peer, "https", Some(&host));
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        // A trusted proxy's is kept: it saw the client's Host.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", "public.example.com".parse().unwrap());
        set_forwarded(&mut h, peer, true, peer, "https", Some(&host));
        assert_eq!(h["x-forwarded-host"], "public.example.com");
    }
}
