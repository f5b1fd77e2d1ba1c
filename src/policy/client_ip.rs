//! The client's address: the TCP peer, unless the peer is a trusted proxy,
//! in which case the right-most untrusted `X-Forwarded-For` entry.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    // Later headers were appended by later hops: walk right to left.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut current = peer;
    for entry in entries.iter().rev() {
        match parse_entry(entry) {
            Some(ip) => {
                current = ip;
                if !is_trusted(ip, trusted) {
                    return ip;
                }
            }
            // Garbage: stop at the last hop we could believe.
            None => return current,
        }
    }
    current
}

fn parse_entry(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // `[v6]:port` or `v4:port`.
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Vec<IpNet> {
        vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    }

    fn h(xff: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("x-forwarded-for", xff.parse().unwrap());
        m
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let ip = client_ip("192.0.2.9".parse().unwrap(), &h("10.1.1.1"), &trusted());
        assert_eq!(ip.to_string(), "192.0.2.9");
    }

    #[test]
    fn trusted_chain_takes_rightmost_untrusted() {
        let ip = client_ip(
            "127.0.0.1".parse().unwrap(),
            &h("6.6.6.6, 198.51.100.4, 10.0.0.2"),
            &trusted(),
        );
        assert_eq!(ip.to_string(), "198.51.100.4");
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let ip = client_ip("127.0.0.1".parse().unwrap(), &HeaderMap::new(), &trusted());
        assert_eq!(ip.to_string(), "127.0.0.1");
    }

    #[test]
    fn garbage_stops_the_walk() {
        let ip = client_ip(
            "127.0.0.1".parse().unwrap(),
            &h("6.6.6.6, nonsense"),
            &trusted(),
        );
        assert_eq!(ip.to_string(), "127.0.0.1");
    }

    #[test]
    fn mapped_v6_peer_is_canonical() {
        let ip = client_ip(
            "::ffff:127.0.0.1".parse().unwrap(),
            &h("203.0.113.5"),
            &trusted(),
        );
        assert_eq!(ip.to_string(), "203.0.113.5");
    }
}
