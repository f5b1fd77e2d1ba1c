//! `portcullis doctor`: each fault it knows, created with the real part
//! (oidc-provider stopped or answering with another issuer, SimpleSAMLphp
//! signing with an expired or soon-expiring certificate, a closed upstream
//! port, a real nginx configuration without X-Forwarded-Proto, a key file
//! the service user cannot read, an IdP whose Date header is off) is
//! reported with its check's status and exit code 1; a sound setup passes.

mod common;
mod operations_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::cases::Cases;
use common::oidc::{CLIENT_ID, CLIENT_SECRET, OidcIdp};
use common::{Gate, TestUpstream, base_yaml, bin, free_port, keygen, uid_of};
use serde_json::{Value, json};

struct Run {
    code: Option<i32>,
    report: Value,
}

impl Run {
    /// The statuses of every check called `name`, in order.
    fn statuses(&self, name: &str) -> Vec<String> {
        self.report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .collect()
    }
    fn status(&self, name: &str) -> String {
        let s = self.statuses(name);
        ["fail", "warn", "ok"]
            .into_iter()
            .find(|w| s.iter().any(|x| x == w))
            .unwrap_or("absent")
            .to_string()
    }
    fn messages(&self, name: &str) -> String {
        self.report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == name)
            .map(|c| format!("{} | fix: {}", c["message"], c["fix"]))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn doctor(config: &Path, extra: &[&str]) -> Run {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .arg("doctor")
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run {
        code: out.status.code(),
        report,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// An app, a fresh directory and in it `app.yaml`, the plain config for the
/// app with the gate on `port` (one an nginx site can name): (app, dir, port,
/// config).
async fn app_with_plain_config() -> (TestUpstream, tempfile::TempDir, u16, PathBuf) {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write(
        dir.path(),
        "app.yaml",
        &yaml(dir.path(), &up.url(), port, ""),
    );
    (up, dir, port, config)
}

/// A gate config for domain `app.test` with the key file in `dir`.
fn yaml(dir: &Path, upstream: &str, listen_port: u16, extra: &str) -> String {
    base_yaml(upstream, extra)
        .replace("KEYFILE", dir.join("keys.json").to_str().unwrap())
        .replace(
            "listen: 127.0.0.1:0",
            &format!("listen: 127.0.0.1:{listen_port}"),
        )
}

fn oidc_section(issuer: &str, secret: &str) -> String {
    format!(
        "oidc:\n  issuer: {issuer}\n  client_id: {CLIENT_ID}\n  client_secret: {secret}\n  scopes: [openid, email, profile]\n"
    )
}

/// nginx's main file around `site` (as tests/operations_support's Nginx writes it).
fn nginx_main(dir: &Path, site: &str) -> PathBuf {
    let d = dir.to_str().unwrap();
    write(dir, "site.conf", site);
    write(
        dir,
        "nginx.conf",
        &format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  include {d}/site.conf;\n}}\n"
        ),
    )
}

/// The shipped proxy-mode example for `app.test`, sending to `listen`.
fn nginx_site(certs: &Path, listen_port: u16) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/config-examples/nginx-proxy.conf")).unwrap();
    let (cert, key) = operations_support::self_signed(certs, "app.test");
    text.replace("/etc/ssl/certs/app.example.com.pem", cert.to_str().unwrap())
        .replace(
            "/etc/ssl/private/app.example.com.key",
            key.to_str().unwrap(),
        )
        .replace("app.example.com", "app.test")
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{};", free_port()),
        )
        .replace("listen [::]:443 ssl http2;", "")
        .replace("listen 80;", &format!("listen 127.0.0.1:{};", free_port()))
        .replace("listen [::]:80;", "")
        .replace(
            "server 127.0.0.1:4180;",
            &format!("server 127.0.0.1:{listen_port};"),
        )
}

#[tokio::test]
async fn sound_oidc_setup_passes_then_idp_and_upstream_down_fail() {
    let up = TestUpstream::start().await;
    let mut idp = OidcIdp::start("http://app.test", 0, &[]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_yaml = yaml(
        dir.path(),
        &up.url(),
        port,
        &oidc_section(&idp.issuer, CLIENT_SECRET),
    );
    let config = write(dir.path(), "app.yaml", &config_yaml);
    let nginx_dir = tempfile::tempdir().unwrap();
    let main = nginx_main(nginx_dir.path(), &nginx_site(nginx_dir.path(), port));
    let nginx = [
        "--nginx-conf",
        main.to_str().unwrap(),
        "--service-user",
        "root",
    ];
    {
        let _gate = Gate::start(&config_yaml);
        let run = doctor(&config, &nginx);
        let mut cases = Cases::new();
        for check in [
            "config",
            "files",
            "idp",
            "discovery",
            "issuer",
            "keys",
            "clock",
            "client",
            "redirect_uri",
            "upstream",
            "instance",
            "nginx",
        ] {
            cases.eq(
                format!("{check}: {}", run.messages(check)),
                run.status(check),
                "ok".to_string(),
            );
        }
        cases.eq("exit code", run.code, Some(0));
        cases.finish();
    }
    // The gate is stopped: nothing answers its health check.
    let run = doctor(&config, &nginx);
    assert_eq!(
        run.status("instance"),
        "warn",
        "{}",
        run.messages("instance")
    );

    // The app's port closed: nothing listens on a fresh free port.
    let closed = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(&config, config_yaml.replace(&up.url(), &closed)).unwrap();
    let run = doctor(&config, &nginx);
    assert_eq!(
        run.status("upstream"),
        "fail",
        "{}",
        run.messages("upstream")
    );
    assert_eq!(run.code, Some(1));

    idp.stop();
    let run = doctor(&config, &nginx);
    assert_eq!(run.status("idp"), "fail", "{}", run.messages("idp"));
    assert!(
        run.messages("idp")
            .contains("cannot reach the OpenID provider")
    );
    assert_eq!(run.code, Some(1));
}

#[tokio::test]
async fn wrong_issuer_secret_and_redirect_uri_are_named() {
    let up = TestUpstream::start().await;
    let idp = OidcIdp::start("http://app.test", 0, &[]);
    let dir = tempfile::tempdir().unwrap();
    let other_host = idp.issuer.replace("127.0.0.1", "localhost");
    assert_ne!(other_host, idp.issuer);
    let cases_list = [
        (
            "issuer written with another host name",
            oidc_section(&other_host, CLIENT_SECRET),
            "app.test",
            "issuer",
        ),
        (
            "wrong client secret",
            oidc_section(&idp.issuer, "not-the-secret"),
            "app.test",
            "client",
        ),
        (
            "domain whose callback is not registered",
            oidc_section(&idp.issuer, CLIENT_SECRET),
            "other.test",
            "redirect_uri",
        ),
    ];
    let mut cases = Cases::new();
    for (what, section, domain, check) in cases_list {
        let text = yaml(dir.path(), &up.url(), free_port(), &section)
            .replace("domain: app.test", &format!("domain: {domain}"));
        let config = write(dir.path(), "app.yaml", &text);
        let run = doctor(&config, &["--service-user", "root"]);
        cases.eq(
            format!("{what}: {}", run.messages(check)),
            run.status(check),
            "fail".to_string(),
        );
        cases.eq(format!("{what}: exit code"), run.code, Some(1));
    }
    cases.finish();
}

/// A tiny real OpenID provider stand-in whose `Date` header is `offset`
/// seconds off (positive: ahead). It serves discovery and an empty key set.
async fn skewed_provider(offset: i64) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let issuer = base.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let issuer = issuer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let body = if path.starts_with("/.well-known/openid-configuration") {
                    json!({
                        "issuer": issuer,
                        "authorization_endpoint": format!("{issuer}/auth"),
                        "token_endpoint": format!("{issuer}/token"),
                        "jwks_uri": format!("{issuer}/jwks"),
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    })
                } else if path.starts_with("/jwks") {
                    json!({"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]})
                } else {
                    json!({"error": "invalid_grant"})
                }
                .to_string();
                let when = if offset >= 0 {
                    SystemTime::now() + Duration::from_secs(offset.unsigned_abs())
                } else {
                    SystemTime::now() - Duration::from_secs(offset.unsigned_abs())
                };
                let date =
                    chrono::DateTime::<chrono::Utc>::from(when).format("%a, %d %b %Y %H:%M:%S GMT");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (base, task)
}

// Multi-threaded: the stand-in answers while the test waits for doctor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_offset_against_the_idp_date_header() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Cases::new();
    // clock_skew is 60 s by default: beyond it logins fail.
    for (offset, want, code) in [
        (0i64, "ok", Some(0)),
        (45, "warn", Some(0)),
        (-45, "warn", Some(0)),
        (300, "fail", Some(1)),
        (-300, "fail", Some(1)),
    ] {
        let (issuer, task) = skewed_provider(offset).await;
        let config = write(
            dir.path(),
            "app.yaml",
            &yaml(
                dir.path(),
                &up.url(),
                free_port(),
                &oidc_section(&issuer, "s"),
            ),
        );
        let run = doctor(&config, &["--service-user", "root"]);
        cases.eq(
            format!("offset {offset} s: {}", run.messages("clock")),
            run.status("clock"),
            want.to_string(),
        );
        cases.eq(format!("offset {offset} s: exit code"), run.code, code);
        task.abort();
    }
    cases.finish();
}

/// An RSA key pair whose certificate is valid from `from_days` to
/// `to_days` (relative to now).
fn cert_pair(dir: &Path, name: &str, from_days: i64, to_days: i64) -> (PathBuf, PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", name).unwrap();
    let n = n.build();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = i64::try_from(now).unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(&n).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now + from_days * 86400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + to_days * 86400).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let (k, c) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    std::fs::write(&k, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(&c, b.build().to_pem().unwrap()).unwrap();
    (k, c)
}

#[tokio::test]
async fn saml_signing_certificate_expired_or_expiring() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (sp_key, sp_cert) = common::saml::new_pair(dir.path(), "sp");
    let mut cases = Cases::new();
    for (what, from, to, want, code) in [
        ("valid for a year", -1, 365, "ok", Some(0)),
        ("expires in 10 days", -300, 10, "warn", Some(0)),
        ("expired yesterday", -300, -1, "fail", Some(1)),
    ] {
        let (k, c) = cert_pair(dir.path(), &format!("idp-{to}"), from, to);
        let mut idp = common::saml::Idp::start_with_pair(json!([]), k, c);
        let section = format!(
            "saml:\n  idp_metadata_url: {}\n  sp_entity_id: http://app.test/sp\n  sp_key_file: {}\n  sp_cert_file: {}\n",
            idp.metadata_url(),
            sp_key.display(),
            sp_cert.display()
        );
        let config = write(
            dir.path(),
            "app.yaml",
            &yaml(dir.path(), &up.url(), free_port(), &section),
        );
        let run = doctor(&config, &["--service-user", "root"]);
        cases.eq(
            format!("{what}: {}", run.messages("certificates")),
            run.status("certificates"),
            want.to_string(),
        );
        cases.eq(
            format!("{what}: metadata"),
            run.status("metadata"),
            "ok".to_string(),
        );
        cases.eq(format!("{what}: exit code"), run.code, code);
        idp.stop();
    }
    cases.finish();
}

#[tokio::test]
async fn nginx_site_faults_from_a_real_nginx_configuration() {
    let (_up, _dir, port, config) = app_with_plain_config().await;
    let mut cases = Cases::new();
    let good = |d: &Path| nginx_site(d, port);
    type Edit = fn(String) -> String;
    let faults: [(&str, Edit, &str); 4] = [
        (
            "no X-Forwarded-Proto",
            |s| s.replace("proxy_set_header X-Forwarded-Proto $scheme;", ""),
            "X-Forwarded-Proto",
        ),
        (
            "no Host",
            |s| s.replace("proxy_set_header Host              $host;", ""),
            "Host",
        ),
        (
            "no WebSocket headers",
            |s| s.replace("proxy_set_header Upgrade    $http_upgrade;", ""),
            "WebSocket",
        ),
        (
            "points at another port",
            |s| s.replace("server 127.0.0.1:", "server 127.0.0.2:"),
            "listen address",
        ),
    ];
    for (what, edit, named) in faults {
        let nd = tempfile::tempdir().unwrap();
        let main = nginx_main(nd.path(), &edit(good(nd.path())));
        let run = doctor(&config, &["--nginx-conf", main.to_str().unwrap()]);
        let msgs = run.messages("nginx");
        cases.eq(
            format!("{what}: {msgs}"),
            run.status("nginx"),
            "fail".to_string(),
        );
        cases.check(what, msgs.contains(named), || {
            format!("names `{named}`: {msgs}")
        });
        cases.eq(format!("{what}: exit code"), run.code, Some(1));
    }
    cases.finish();
}

/// nginx's stock buffers in front of users with many groups: doctor warns
/// of the 400 and the 502 before a user meets them; keeping fewer groups
/// (`session.groups`) makes the same site fine.
#[tokio::test]
async fn nginx_stock_buffers_are_named_unless_the_session_fits() {
    let (up, dir, port, config) = app_with_plain_config().await;
    let stock = |s: String| -> String {
        s.lines()
            .filter(|l| {
                let l = l.trim_start();
                !(l.starts_with("large_client_header_buffers")
                    || l.starts_with("proxy_buffer")
                    || l.starts_with("proxy_busy_buffers_size"))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let nd = tempfile::tempdir().unwrap();
    let main = nginx_main(nd.path(), &stock(nginx_site(nd.path(), port)));
    let nginx = ["--nginx-conf", main.to_str().unwrap()];

    // The defaults fit stock nginx: the many-group user gets Portcullis'
    // own page, which doctor says.
    let run = doctor(&config, &nginx);
    assert_eq!(run.status("nginx"), "ok", "{}", run.messages("nginx"));
    assert_eq!(run.status("cookie_size"), "warn");
    assert!(
        run.messages("cookie_size")
            .contains("too large for a cookie"),
        "{}",
        run.messages("cookie_size")
    );

    // Sessions as big as the shipped examples carry: stock buffers are not.
    let big = yaml(dir.path(), &up.url(), port, "")
        .replace("session:\n", "session:\n  max_cookie_bytes: 30400\n");
    let config = write(dir.path(), "big.yaml", &big);
    let run = doctor(&config, &nginx);
    let msgs = run.messages("nginx");
    assert_eq!(run.status("nginx"), "warn", "{msgs}");
    assert!(
        msgs.contains("Request Header Or Cookie Too Large"),
        "{msgs}"
    );
    assert!(msgs.contains("(proxy_buffer_size)"), "{msgs}");
    assert!(msgs.contains("upstream sent too big header"), "{msgs}");
    assert_eq!(run.status("cookie_size"), "ok");

    let filtered = big.replace("session:\n", "session:\n  groups: ['cn=app-group-00*']\n");
    let config = write(dir.path(), "filtered.yaml", &filtered);
    let run = doctor(&config, &nginx);
    let msgs = run.messages("nginx");
    assert_eq!(run.status("nginx"), "ok", "{msgs}");
}

#[tokio::test]
async fn key_file_the_service_user_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("skipped: needs root to make files another user cannot read");
        return;
    }
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write(
        dir.path(),
        "app.yaml",
        &yaml(dir.path(), &up.url(), free_port(), ""),
    );
    let keys = dir.path().join("keys.json");
    let o = keygen(&keys);
    assert!(o.status.success());
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Created by root: the service user (nobody, which every system has)
    // may not read it.
    let run = doctor(&config, &["--service-user", "nobody"]);
    assert_eq!(run.status("files"), "fail", "{}", run.messages("files"));
    assert!(
        run.messages("files").contains("chown nobody:"),
        "{}",
        run.messages("files")
    );
    assert_eq!(run.code, Some(1));
    // Given to that user, it passes.
    let nobody = uid_of("nobody");
    std::os::unix::fs::chown(&keys, Some(nobody), None).unwrap();
    let run = doctor(&config, &["--service-user", "nobody"]);
    assert_eq!(run.status("files"), "ok", "{}", run.messages("files"));
    // A key ring others may read is a warning.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = doctor(&config, &["--service-user", "nobody"]);
    assert_eq!(run.status("files"), "warn", "{}", run.messages("files"));
}
