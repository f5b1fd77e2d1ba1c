//! Forward-auth: the request the front proxy asks about, read from the one
//! header family the configuration names (`forward_auth.headers`).
//!
//! Front proxies copy the client's headers into their question and set
//! only their own family (Caddy and Traefik `X-Forwarded-*`; nginx
//! whatever its `proxy_set_header` lines say), so the other family is the
//! client's to write. It is never read; a copy that disagrees with the
//! believed one is refused, so a misconfigured family fails loudly instead
//! of letting the client describe its own request.

use http::{HeaderMap, Method, Uri};

use super::request::Target;
use crate::config::HeaderFamily;

/// The header names of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    pub uri: &'static str,
    pub method: &'static str,
    /// Where the original host is: nginx's question keeps the client's
    /// `Host` (`proxy_set_header Host $host`), Caddy and Traefik put it in
    /// `X-Forwarded-Host`. Host headers are not compared across families:
    /// Traefik's question has the auth server's own `Host`.
    pub host: &'static str,
}

const NGINX: Names = Names {
    uri: "x-original-uri",
    method: "x-original-method",
    host: "host",
};

const FORWARDED: Names = Names {
    uri: "x-forwarded-uri",
    method: "x-forwarded-method",
    host: "x-forwarded-host",
};

pub fn names(family: HeaderFamily) -> Names {
    match family {
        HeaderFamily::Nginx => NGINX,
        HeaderFamily::Forwarded => FORWARDED,
    }
}

fn other(family: HeaderFamily) -> Names {
    match family {
        HeaderFamily::Nginx => FORWARDED,
        HeaderFamily::Forwarded => NGINX,
    }
}

/// Why a forward-auth question is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginalError {
    #[error(
        "the question carries no {header}: with `forward_auth.headers: {family}` the web server must set it (see the forward-auth examples), or set `forward_auth.headers` to the family it does send"
    )]
    Missing {
        header: &'static str,
        family: &'static str,
    },
    #[error("{header} is sent more than once; the web server must set exactly one")]
    Repeated { header: &'static str },
    #[error("{header} is not a request target or method")]
    Invalid { header: &'static str },
    #[error(
        "{theirs} disagrees with {ours}, which `forward_auth.headers` says to believe: a client is describing its own request"
    )]
    Conflict {
        ours: &'static str,
        theirs: &'static str,
    },
}

/// The original request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// Raw path and query as the client sent them; `*` for asterisk-form,
    /// the authority for authority-form.
    pub path_and_query: String,
    /// The authority of an absolute URL in the URI header.
    pub authority: Option<String>,
    form: Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Path,
    Asterisk,
    Authority,
}

impl Original {
    pub fn read(headers: &HeaderMap, family: HeaderFamily) -> Result<Original, OriginalError> {
        let ours = names(family);
        let uri_value = single(headers, ours.uri, family)?;
        let method_value = single(headers, ours.method, family)?;
        let orig = parse(uri_value, method_value, ours)?;
        let theirs = other(family);
        for v in headers.get_all(theirs.uri) {
            let same = v
                .to_str()
                .ok()
                .and_then(|v| parse_target(v.trim()))
                .is_some_and(|(pq, authority, form)| {
                    pq == orig.path_and_query && authority == orig.authority && form == orig.form
                });
            if !same {
                return Err(OriginalError::Conflict {
                    ours: ours.uri,
                    theirs: theirs.uri,
                });
            }
        }
        for v in headers.get_all(theirs.method) {
            if v.to_str().ok().map(str::trim) != Some(orig.method.as_str()) {
                return Err(OriginalError::Conflict {
                    ours: ours.method,
                    theirs: theirs.method,
                });
            }
        }
        Ok(orig)
    }

    pub fn target(&self) -> Target<'_> {
        match self.form {
            Form::Asterisk => Target::Asterisk,
            Form::Authority => Target::Authority,
            Form::Path => {
                let (path, query) = match self.path_and_query.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (self.path_and_query.as_str(), None),
                };
                Target::Path { path, query }
            }
        }
    }
}

fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
    family: HeaderFamily,
) -> Result<&'h str, OriginalError> {
    let mut all = headers.get_all(name).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(if headers.contains_key(name) {
            OriginalError::Repeated { header: name }
        } else {
            OriginalError::Missing {
                header: name,
                family: family.as_str(),
            }
        });
    };
    let v = v
        .to_str()
        .map_err(|_| OriginalError::Invalid { header: name })?
        .trim();
    if v.is_empty() {
        return Err(OriginalError::Missing {
            header: name,
            family: family.as_str(),
        });
    }
    Ok(v)
}

fn parse(uri: &str, method: &str, names: Names) -> Result<Original, OriginalError> {
    let (path_and_query, authority, form) =
        parse_target(uri).ok_or(OriginalError::Invalid { header: names.uri })?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| OriginalError::Invalid {
        header: names.method,
    })?;
    Ok(Original {
        method,
        path_and_query,
        authority,
        form,
    })
}

/// Path and query, authority and form of a request target (origin-form,
/// absolute-form, `*` or authority-form), without changing a byte of the
/// path.
fn parse_target(v: &str) -> Option<(String, Option<String>, Form)> {
    if v == "*" {
        return Some(("*".into(), None, Form::Asterisk));
    }
    // A request target has no fragment (RFC 9112 §3.2), yet nginx's
    // `$request_uri` keeps one a client sends. `http` would drop it, so the
    // gate would judge `/public/x` while a front that forwards
    // `$request_uri` hands `/public/x#/../../admin` to an app that may
    // resolve it.
    if v.contains('#') {
        return None;
    }
    let uri: Uri = v.parse().ok()?;
    match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (Some(_), Some(a), pq) => {
            let pq = pq
                .map(http::uri::PathAndQuery::as_str)
                .filter(|p| p.starts_with('/'));
            Some((
                pq.unwrap_or("/").to_string(),
                Some(a.to_string()),
                Form::Path,
            ))
        }
        (None, Some(a), _) if !v.starts_with('/') => Some((a.to_string(), None, Form::Authority)),
        (None, None, Some(pq)) if pq.as_str().starts_with('/') => {
            Some((pq.as_str().to_string(), None, Form::Path))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn read(family: HeaderFamily, pairs: &[(&str, &str)]) -> Result<Original, OriginalError> {
        Original::read(&h(pairs), family)
    }

    #[test]
    fn nginx_family() {
        let o = read(
            HeaderFamily::Nginx,
            &[
                ("x-original-uri", "/a/../b?x=1"),
                ("x-original-method", "POST"),
            ],
        )
        .unwrap();
        assert_eq!(o.method, Method::POST);
        assert_eq!(
            o.target(),
            Target::Path {
                path: "/a/../b",
                query: Some("x=1")
            }
        );
    }

    #[test]
    fn forwarded_family_and_absolute_urls() {
        let o = read(
            HeaderFamily::Forwarded,
            &[
                ("x-forwarded-uri", "https://a.example.com/p/../q?z"),
                ("x-forwarded-method", "GET"),
            ],
        )
        .unwrap();
        assert_eq!(o.path_and_query, "/p/../q?z");
        assert_eq!(o.authority.as_deref(), Some("a.example.com"));
        let o = read(
            HeaderFamily::Forwarded,
            &[("x-forwarded-uri", "*"), ("x-forwarded-method", "OPTIONS")],
        )
        .unwrap();
        assert_eq!(o.target(), Target::Asterisk);
        let o = read(
            HeaderFamily::Forwarded,
            &[
                ("x-forwarded-uri", "app.test:443"),
                ("x-forwarded-method", "CONNECT"),
            ],
        )
        .unwrap();
        assert_eq!(o.target(), Target::Authority);
    }

    #[test]
    fn the_other_family_alone_is_not_read() {
        assert_eq!(
            read(
                HeaderFamily::Nginx,
                &[
                    ("x-forwarded-uri", "/public/x"),
                    ("x-forwarded-method", "GET")
                ]
            ),
            Err(OriginalError::Missing {
                header: "x-original-uri",
                family: "nginx"
            })
        );
        assert_eq!(
            read(
                HeaderFamily::Forwarded,
                &[
                    ("x-original-uri", "/public/x"),
                    ("x-original-method", "GET")
                ]
            ),
            Err(OriginalError::Missing {
                header: "x-forwarded-uri",
                family: "forwarded"
            })
        );
        assert_eq!(
            read(HeaderFamily::Nginx, &[("x-original-uri", "/x")]),
            Err(OriginalError::Missing {
                header: "x-original-method",
                family: "nginx"
            })
        );
    }

    #[test]
    fn conflicting_copies_are_refused_agreeing_ones_ignored() {
        let caddy = [("x-forwarded-uri", "/admin"), ("x-forwarded-method", "GET")];
        let mut with_client_copy = caddy.to_vec();
        with_client_copy.push(("x-original-uri", "/public/x"));
        assert_eq!(
            read(HeaderFamily::Forwarded, &with_client_copy),
            Err(OriginalError::Conflict {
                ours: "x-forwarded-uri",
                theirs: "x-original-uri"
            })
        );
        let mut method_copy = caddy.to_vec();
        method_copy.push(("x-original-method", "POST"));
        assert_eq!(
            read(HeaderFamily::Forwarded, &method_copy),
            Err(OriginalError::Conflict {
                ours: "x-forwarded-method",
                theirs: "x-original-method"
            })
        );
        let mut same = caddy.to_vec();
        same.push(("x-original-uri", "/admin"));
        same.push(("x-original-method", "GET"));
        assert_eq!(
            read(HeaderFamily::Forwarded, &same).unwrap().path_and_query,
            "/admin"
        );
        // nginx believed, a client's X-Forwarded-Uri disagrees.
        assert_eq!(
            read(
                HeaderFamily::Nginx,
                &[
                    ("x-original-uri", "/admin"),
                    ("x-original-method", "GET"),
                    ("x-forwarded-uri", "/public/x"),
                ]
            ),
            Err(OriginalError::Conflict {
                ours: "x-original-uri",
                theirs: "x-forwarded-uri"
            })
        );
        // A second copy of the other family that disagrees counts too.
        assert!(matches!(
            read(
                HeaderFamily::Nginx,
                &[
                    ("x-original-uri", "/admin"),
                    ("x-original-method", "GET"),
                    ("x-forwarded-uri", "/admin"),
                    ("x-forwarded-uri", "/public/x"),
                ]
            ),
            Err(OriginalError::Conflict { .. })
        ));
    }

    #[test]
    fn repeated_empty_and_invalid_values_are_refused() {
        assert_eq!(
            read(
                HeaderFamily::Nginx,
                &[
                    ("x-original-uri", "/admin"),
                    ("x-original-uri", "/public/x"),
                    ("x-original-method", "GET"),
                ]
            ),
            Err(OriginalError::Repeated {
                header: "x-original-uri"
            })
        );
        assert!(matches!(
            read(
                HeaderFamily::Nginx,
                &[("x-original-uri", " "), ("x-original-method", "GET")]
            ),
            Err(OriginalError::Missing { .. })
        ));
        for bad in ["http://", "a b", "?x"] {
            assert_eq!(
                read(
                    HeaderFamily::Nginx,
                    &[("x-original-uri", bad), ("x-original-method", "GET")]
                ),
                Err(OriginalError::Invalid {
                    header: "x-original-uri"
                }),
                "{bad}"
            );
        }
        assert_eq!(
            read(
                HeaderFamily::Nginx,
                &[("x-original-uri", "/"), ("x-original-method", "G E T")]
            ),
            Err(OriginalError::Invalid {
                header: "x-original-method"
            })
        );
    }

    /// Found by `tests/fuzz_request.rs`: `http` drops a fragment, so the
    /// gate judged `/public/x` while a front proxy forwarding nginx's
    /// `$request_uri` hands the target with `#/../../admin` to the app.
    #[test]
    fn regression_a_fragment_in_the_described_uri_is_refused() {
        for bad in ["/public/x#/../../admin", "/#", "http://app.test/public/#x"] {
            assert_eq!(
                read(
                    HeaderFamily::Nginx,
                    &[("x-original-uri", bad), ("x-original-method", "GET")]
                ),
                Err(OriginalError::Invalid {
                    header: "x-original-uri"
                }),
                "{bad}"
            );
        }
    }
}
