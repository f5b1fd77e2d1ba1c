//! `access.trusted_proxies` may never include everyone: a trusted peer's
//! `X-Forwarded-For` decides the client address that `allowed_ip_ranges`,
//! the metrics allow list and every audit event rely on. Trusting every
//! address would let any client choose its own.

use ipnet::IpNet;

use super::FieldError;

/// The problems with a parsed list of trusted proxy ranges, each with what
/// to do instead. Refused:
/// - any range of prefix length 0 (`0.0.0.0/0`, `::/0`), as its own entry;
/// - ranges that together cover every IPv4 or every IPv6 address
///   (`0.0.0.0/1` + `128.0.0.0/1`): the union is what counts;
/// - IPv4-mapped IPv6 ranges (`::ffff:10.0.0.0/104`): IPv4 peers are
///   compared as IPv4, so such a range would never match what the operator
///   means; the IPv4 spelling says it plainly.
pub(super) fn check(field: &str, raw: &[String], nets: &[(usize, IpNet)]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for &(i, net) in nets {
        let entry = raw.get(i).map(|s| s.trim()).unwrap_or_default();
        if net.prefix_len() == 0 {
            errs.push(FieldError {
                field: format!("{field}[{i}]"),
                message: format!(
                    "`{entry}` trusts every address: any client could then set X-Forwarded-For and choose the address Portcullis sees; list only your own proxies, e.g. `127.0.0.1` or `10.0.3.0/24`"
                ),
            });
        } else if let IpNet::V6(v6) = net
            && let Some(v4) = v6.addr().to_ipv4_mapped()
            && v6.prefix_len() >= 96
        {
            errs.push(FieldError {
                field: format!("{field}[{i}]"),
                message: format!(
                    "`{entry}` is an IPv4-mapped IPv6 range, which never matches: write the IPv4 range `{v4}/{}`",
                    v6.prefix_len() - 96
                ),
            });
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    let all: Vec<IpNet> = nets.iter().map(|&(_, n)| n).collect();
    for merged in IpNet::aggregate(&all) {
        if merged.prefix_len() == 0 {
            let family = if merged.addr().is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            };
            errs.push(FieldError {
                field: field.to_string(),
                message: format!(
                    "these ranges together include every {family} address: any client could then set X-Forwarded-For and choose the address Portcullis sees; list only your own proxies, e.g. `127.0.0.1` or `10.0.3.0/24`"
                ),
            });
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(list: &[&str]) -> Vec<(String, String)> {
        let raw: Vec<String> = list.iter().map(std::string::ToString::to_string).collect();
        let nets: Vec<(usize, IpNet)> = list
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.parse().unwrap()))
            .collect();
        check("access.trusted_proxies", &raw, &nets)
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn fields(list: &[&str]) -> Vec<String> {
        errors(list).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_range_of_length_zero_is_refused_where_it_stands() {
        assert_eq!(fields(&["0.0.0.0/0"]), ["access.trusted_proxies[0]"]);
        assert_eq!(
            fields(&["127.0.0.1/32", "::/0"]),
            ["access.trusted_proxies[1]"]
        );
        // Host bits do not change what a /0 means.
        assert_eq!(fields(&["10.1.2.3/0"]), ["access.trusted_proxies[0]"]);
        let (_, message) = &errors(&["0.0.0.0/0"])[0];
        assert!(
            message.contains("`0.0.0.0/0` trusts every address"),
            "{message}"
        );
        assert!(message.contains("list only your own proxies"), "{message}");
    }

    #[test]
    fn ranges_that_add_up_to_everyone_are_refused() {
        assert_eq!(
            fields(&["0.0.0.0/1", "128.0.0.0/1"]),
            ["access.trusted_proxies"]
        );
        assert_eq!(
            fields(&["::/1", "8000::/2", "c000::/2", "127.0.0.1/32"]),
            ["access.trusted_proxies"]
        );
        let v4_quarters = ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"];
        let (field, message) = &errors(&v4_quarters)[0];
        assert_eq!(field, "access.trusted_proxies");
        assert!(message.contains("every IPv4 address"), "{message}");
    }

    #[test]
    fn wide_but_not_everyone_is_allowed() {
        for ok in [
            &["127.0.0.0/8", "::1/128"][..],
            &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
            &["0.0.0.0/1"],
            &["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3"],
            &["fd00::/8"],
        ] {
            assert_eq!(errors(ok), vec![], "{ok:?}");
        }
    }

    #[test]
    fn ipv4_mapped_ranges_are_refused_with_their_ipv4_spelling() {
        let e = errors(&["::ffff:10.0.0.0/104"]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "access.trusted_proxies[0]");
        assert!(e[0].1.contains("`10.0.0.0/8`"), "{}", e[0].1);
        let e = errors(&["::ffff:0.0.0.0/96"]);
        assert!(e[0].1.contains("`0.0.0.0/0`"), "{}", e[0].1);
    }
}
