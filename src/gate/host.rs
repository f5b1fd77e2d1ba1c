//! `strict_host`: a request must name this domain (or an alias) in every
//! `Host` it carries and in an absolute-form authority, so a misrouted
//! `server` block in the web server cannot feed the app arbitrary host
//! names (password-reset links, cache keys, virtual hosts).

use super::request::HostNames;
use crate::config::Hosts;

/// Whether the request may be answered under `hosts`. Always true when
/// `strict_host` is off.
pub fn allowed(hosts: &Hosts, names: &HostNames<'_>) -> bool {
    if !hosts.strict {
        return true;
    }
    // HTTP/2 carries the host in the authority only; HTTP/1.1 needs Host.
    if names.header.is_empty() && names.authority.is_none() {
        return false;
    }
    names
        .header
        .iter()
        .map(|h| h.map(str::trim))
        .chain(names.authority.map(Some))
        .all(|h| h.is_some_and(|h| is_ours(hosts, h)))
}

/// `h` is a configured name, with the scheme's port written or left out.
fn is_ours(hosts: &Hosts, h: &str) -> bool {
    let default_port = format!(":{}", hosts.default_port);
    let bare = h.strip_suffix(default_port.as_str()).unwrap_or(h);
    hosts
        .names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(h) || n.eq_ignore_ascii_case(bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(strict: bool) -> Hosts {
        Hosts {
            strict,
            names: vec!["app.example.com".into(), "app.internal:8443".into()],
            default_port: 443,
        }
    }

    fn names<'a>(header: &[&'a str], authority: Option<&'a str>) -> HostNames<'a> {
        HostNames {
            header: header.iter().map(|h| Some(*h)).collect(),
            authority,
        }
    }

    #[test]
    fn off_by_default_allows_anything() {
        assert!(allowed(&hosts(false), &names(&["evil.example"], None)));
        assert!(allowed(&hosts(false), &HostNames::default()));
    }

    #[test]
    fn strict_accepts_the_domain_and_aliases_only() {
        let h = hosts(true);
        for ok in [
            "app.example.com",
            "APP.Example.com",
            "app.example.com:443",
            "app.internal:8443",
        ] {
            assert!(allowed(&h, &names(&[ok], None)), "{ok}");
        }
        for bad in [
            "evil.example",
            "app.example.com:8443",
            "app.example.com.evil.example",
            "app.internal",
            "127.0.0.1",
            "",
        ] {
            assert!(!allowed(&h, &names(&[bad], None)), "{bad}");
        }
        // HTTP/2: authority only.
        assert!(allowed(&h, &names(&[], Some("app.example.com"))));
        // Every copy and the absolute-form authority must be ours.
        assert!(!allowed(
            &h,
            &names(&["app.example.com"], Some("evil.example"))
        ));
        assert!(!allowed(
            &h,
            &names(&["app.example.com", "evil.example"], None)
        ));
        assert!(!allowed(&h, &HostNames::default()));
        assert!(!allowed(
            &h,
            &HostNames {
                header: vec![None],
                authority: None
            }
        ));
    }
}
