//! The header battery: what a client sends to get more than it may (a
//! forged identity in every spelling, routing and method overrides, other
//! gates' identity headers, Portcullis' session cookie, a passthrough
//! token), on a passthrough path, with a session and with a token; and the
//! judge of what the app received. The same battery runs in proxy mode and
//! through nginx `auth_request` and Caddy `forward_auth`.

use http::HeaderMap;

use super::cases::Cases;
use super::paths::{CASE_HEADER, RecordingUpstream};

/// The passthrough token the battery's gate knows.
pub const TOKEN: &str = "battery-token-0123456789abcdef";

/// Marks every forged value: none may reach the app.
const FORGED: &str = "forged-by-client";

/// Gate settings the battery needs: the passthrough prefix, the token, and
/// an extra identity header (`X-Dept` from attribute `department`).
pub fn gate_yaml_extra() -> String {
    format!(
        "passthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: backup\n      sha256: {}\nheaders:\n  extra:\n    department: X-Dept\n",
        hex::encode(portcullis::policy::tokens::sha256(TOKEN))
    )
}

/// Headers a client forges.
pub fn forged() -> Vec<(&'static str, String)> {
    [
        "X-Forwarded-User",
        "X-Forwarded-Email",
        "X-Forwarded-Groups",
        "X-Forwarded-Preferred-Username",
        "X-Forwarded-Name",
        "X-Dept",
        "X_Forwarded_User",
        "x_forwarded_email",
        "X_Dept",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-HTTP-Method-Override",
        "X-Method-Override",
        "Remote-User",
        "X-Remote-User",
        "X-Auth-Request-Email",
        "X-Forwarded-Access-Token",
    ]
    .into_iter()
    .map(|n| (n, format!("{FORGED}-admin")))
    .collect()
}

/// What the app must see for one probe.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: &'static str,
    pub path: &'static str,
    /// Sent besides the forged headers.
    pub headers: Vec<(&'static str, String)>,
    /// The user the app must see (`None`: no identity).
    pub user: Option<&'static str>,
    /// The `Cookie` the app must see (`None`: no cookie or an empty one).
    pub cookie: Option<&'static str>,
    /// The `Authorization` the app must see.
    pub authorization: Option<String>,
}

/// The probes; `session` is a `name=value` session cookie for alice with
/// `department: R&D`.
pub fn probes(session: &str) -> Vec<Probe> {
    let bearer = format!("Bearer {TOKEN}");
    vec![
        Probe {
            name: "passthrough path with the session cookie and a token in Authorization",
            path: "/public/page",
            headers: vec![
                ("cookie", format!("app=1; {session}")),
                ("authorization", bearer.clone()),
            ],
            user: None,
            cookie: Some("app=1"),
            authorization: None,
        },
        Probe {
            name: "passthrough path with only Portcullis' cookie",
            path: "/public/page",
            headers: vec![("cookie", session.to_string())],
            user: None,
            cookie: None,
            authorization: None,
        },
        Probe {
            name: "passthrough path with the app's own Basic credentials",
            path: "/public/page",
            headers: vec![("authorization", "Basic YXBwLXVzZXI6YXBwLXB3".into())],
            user: None,
            cookie: None,
            authorization: Some("Basic YXBwLXVzZXI6YXBwLXB3".into()),
        },
        Probe {
            name: "protected path with a session",
            path: "/dash",
            headers: vec![("cookie", format!("theme=dark; {session}; lang=en"))],
            user: Some("alice"),
            cookie: Some("theme=dark; lang=en"),
            authorization: None,
        },
        Probe {
            name: "protected path with a token in Authorization and the session cookie",
            path: "/api/backup",
            headers: vec![
                ("authorization", bearer.clone()),
                ("cookie", session.to_string()),
            ],
            user: Some("backup"),
            cookie: None,
            authorization: None,
        },
        Probe {
            name: "protected path with a token in the product header and the app's own Authorization",
            path: "/api/backup",
            headers: vec![
                ("x-portcullis-authorization", bearer),
                ("authorization", "Bearer app-own-token".into()),
            ],
            user: Some("backup"),
            cookie: None,
            authorization: Some("Bearer app-own-token".into()),
        },
    ]
}

/// Everything wrong with what the app received for `probe`.
pub fn judge(probe: &Probe, app: &HeaderMap, session_token: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let get = |n: &str| {
        app.get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .filter(|v| !v.is_empty())
    };
    for (k, v) in app {
        let v = String::from_utf8_lossy(v.as_bytes());
        if k.as_str() == CASE_HEADER {
            continue;
        }
        if v.contains(FORGED) {
            wrong.push(format!("forged {k}: {v}"));
        }
        if v.contains(TOKEN) {
            wrong.push(format!("the passthrough token reached the app in {k}"));
        }
        if v.contains(session_token) {
            wrong.push(format!("the session token reached the app in {k}"));
        }
        if k.as_str().contains('_') {
            wrong.push(format!("a `_` spelling reached the app: {k}"));
        }
        if k.as_str() == "x-portcullis-authorization" && !v.is_empty() {
            wrong.push("the token header reached the app".into());
        }
    }
    if get("x-forwarded-user").as_deref() != probe.user {
        wrong.push(format!(
            "user {:?}, expected {:?}",
            get("x-forwarded-user"),
            probe.user
        ));
    }
    let dept = get("x-dept");
    let want_dept = (probe.user == Some("alice")).then_some("R&D");
    if dept.as_deref() != want_dept {
        wrong.push(format!("x-dept {dept:?}, expected {want_dept:?}"));
    }
    if get("cookie").as_deref() != probe.cookie {
        wrong.push(format!(
            "cookie {:?}, expected {:?}",
            get("cookie"),
            probe.cookie
        ));
    }
    if get("authorization") != probe.authorization {
        wrong.push(format!(
            "authorization {:?}, expected {:?}",
            get("authorization"),
            probe.authorization
        ));
    }
    wrong
}

/// alice, with the department the extra header carries.
pub fn alice_with_department() -> portcullis::identity::Identity {
    let mut id = super::alice();
    id.extra.insert("department".into(), "R&D".into());
    id
}

/// Sends every probe to `base` (the front's URL) with `client`, alice's
/// `session` cookie and the forged headers, and judges what `app` got.
pub async fn run_probes(
    client: &reqwest::Client,
    base: &str,
    app: &RecordingUpstream,
    session: &str,
) -> Cases {
    let session_token = session.split_once('=').map_or(session, |(_, t)| t);
    let mut results = Cases::new();
    for (n, probe) in probes(session).iter().enumerate() {
        let mut rb = client
            .get(format!("{base}{}", probe.path))
            .header(CASE_HEADER, n.to_string());
        for (k, v) in forged().iter().chain(&probe.headers) {
            rb = rb.header(*k, v);
        }
        let status = rb.send().await.unwrap().status();
        let seen = app.seen_for(n);
        let wrong = match (status.as_u16(), seen.as_slice()) {
            (200, [one]) => judge(probe, &one.headers, session_token),
            _ => vec![format!("status {status}, the app saw {}", seen.len())],
        };
        results.check(probe.name, wrong.is_empty(), || wrong.join("; "));
    }
    results
}
