//! `portcullis new`: refuses to overwrite without --force, names the flag
//! of a bad value, and writes a domain that passes `check-config` and
//! `doctor` against the real oidc-provider and SimpleSAMLphp (with its
//! nginx snippet read by the real `nginx -T`).

mod common;
mod operations_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cases::Cases;
use common::oidc::{CLIENT_SECRET, OidcIdp, new_oidc_flags};
use common::{TestUpstream, bin, free_port};
use serde_json::Value;

fn new(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("new")
        .args(args)
        .arg("--config-dir")
        .arg(dir.join("etc"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check_config(path: &Path) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(path)
        .arg("check-config")
        .output()
        .unwrap()
}

fn secret_file(dir: &Path) -> PathBuf {
    let p = dir.join("client-secret");
    std::fs::write(&p, CLIENT_SECRET).unwrap();
    p
}

#[test]
fn refuses_an_existing_file_without_force_and_keeps_keys_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let args = [
        "grafana",
        "--domain",
        "grafana.example.com",
        "--upstream",
        "http://127.0.0.1:3000",
        "--oidc",
        "https://login.example.com/realms/corp",
        "--client-id",
        "grafana",
        "--client-secret-file",
        secret.to_str().unwrap(),
    ];
    let first = new(dir.path(), &args);
    assert!(first.status.success(), "{}", text(&first));
    let config = dir.path().join("etc/grafana.yaml");
    let ring = dir.path().join("state/session-keys.json");
    let keys = std::fs::read(&ring).unwrap();
    std::fs::write(&config, "domain: edited.example.com\n").unwrap();

    let again = new(dir.path(), &args);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("--force"), "{}", text(&again));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "domain: edited.example.com\n"
    );

    let mut forced = args.to_vec();
    forced.push("--force");
    let o = new(dir.path(), &forced);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("grafana.example.com")
    );
    assert_eq!(
        std::fs::read(&ring).unwrap(),
        keys,
        "--force must keep the session keys"
    );
    assert_eq!(
        std::fs::metadata(&ring).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = check_config(&config);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_bad_value_is_refused_naming_its_flag_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = |flag: &str, value: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            "app",
            "--domain",
            "app.example.com",
            "--upstream",
            "http://127.0.0.1:3000",
            "--oidc",
            "https://login.example.com",
            "--client-id",
            "app",
        ]
        .map(String::from)
        .to_vec();
        if let Some(i) = v.iter().position(|a| a == flag) {
            v[i + 1] = value.to_string();
        } else {
            // --saml replaces the OIDC flags.
            v.truncate(5);
            v.push(flag.into());
            v.push(value.into());
        }
        v
    };
    let mut cases = Cases::new();
    for (flag, value) in [
        ("--domain", "https://app.example.com"),
        ("--domain", "app.example.com/path"),
        ("--domain", "app example.com"),
        ("--domain", "app.example.com:0"),
        ("--domain", "app.example.com:99999"),
        ("--domain", "app.example.com:"),
        ("--upstream", "127.0.0.1:3000"),
        ("--upstream", "ftp://127.0.0.1/"),
        ("--oidc", "login.example.com"),
        ("--oidc", "http://login.example.com/"),
        ("--saml", "/nonexistent/idp-metadata.xml"),
        ("--saml", "ftp://idp.example.com/metadata"),
    ] {
        let args = good(flag, value);
        let o = new(
            dir.path(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let t = text(&o);
        cases.eq(
            format!("{flag} {value}: exit code"),
            o.status.code(),
            Some(1),
        );
        cases.check(format!("{flag} {value}"), t.contains(flag), || {
            format!("the message does not name {flag}: {t}")
        });
    }
    cases.check("nothing written", !dir.path().join("etc").exists(), || {
        "a refused command wrote files".into()
    });
    cases.finish();
}

/// An app that browsers reach on another port than 443: the config's
/// domain carries the port (Portcullis checks `Host` against it and builds
/// its URLs with it), the nginx snippet listens there and names the host.
#[test]
fn a_domain_with_a_port_reaches_the_config_and_the_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let o = new(
        dir.path(),
        &[
            "wiki",
            "--domain",
            "Wiki.Example.com:8443",
            "--upstream",
            "http://127.0.0.1:3000",
            "--oidc",
            "https://login.example.com/realms/corp",
            "--client-id",
            "wiki",
            "--client-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let config = dir.path().join("etc/wiki.yaml");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("domain: \"wiki.example.com:8443\"\n")
    );
    let c = check_config(&config);
    assert!(c.status.success(), "{}", text(&c));
    assert!(
        text(&o).contains("https://wiki.example.com:8443/.portcullis/oidc/callback"),
        "{}",
        text(&o)
    );
    let snippet = std::fs::read_to_string(dir.path().join("etc/wiki.nginx.conf")).unwrap();
    for want in [
        "listen 8443 ssl",
        "listen [::]:8443 ssl",
        "server_name wiki.example.com;",
        "return 301 https://$host:8443$request_uri;",
        "/etc/ssl/certs/wiki.example.com.pem",
    ] {
        assert!(snippet.contains(want), "{want} in:\n{snippet}");
    }
    assert!(
        !snippet.contains("443 ssl http2;\n    listen [::]:443"),
        "{snippet}"
    );
    assert!(!snippet.contains("wiki.example.com:8443;"), "{snippet}");
}

/// The snippet with a real certificate, behind a main file for `nginx -T`.
fn nginx_main(etc: &Path, name: &str, domain: &str) -> PathBuf {
    let certs = etc.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (cert, key) = operations_support::self_signed(&certs, domain);
    let snippet = std::fs::read_to_string(etc.join(format!("{name}.nginx.conf")))
        .unwrap()
        .replace(
            &format!("/etc/ssl/certs/{domain}.pem"),
            cert.to_str().unwrap(),
        )
        .replace(
            &format!("/etc/ssl/private/{domain}.key"),
            key.to_str().unwrap(),
        )
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{};", free_port()),
        )
        .replace("listen [::]:443 ssl http2;", "")
        .replace("listen 80;", &format!("listen 127.0.0.1:{};", free_port()))
        .replace("listen [::]:80;", "");
    std::fs::write(certs.join("site.conf"), snippet).unwrap();
    let d = certs.to_str().unwrap();
    let main = certs.join("nginx.conf");
    std::fs::write(
        &main,
        format!("pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  include {d}/site.conf;\n}}\n"),
    )
    .unwrap();
    main
}

fn doctor(config: &Path, nginx: &Path) -> (Option<i32>, Value) {
    let o = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["doctor", "--json", "--service-user", "root", "--nginx-conf"])
        .arg(nginx)
        .output()
        .unwrap();
    (
        o.status.code(),
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o))),
    )
}

fn failures(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(std::string::ToString::to_string)
        .collect()
}

#[tokio::test]
async fn oidc_domain_against_the_real_provider_passes_check_config_and_doctor() {
    let up = TestUpstream::start().await;
    // The provider knows the callback of http://app.test only; `new` writes
    // https://DOMAIN, so register that one.
    let idp = OidcIdp::start("https://app.test", 0, &[]);
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let listen = format!("127.0.0.1:{}", free_port());
    let up_url = up.url();
    let flags = new_oidc_flags(&up_url, &idp.issuer, secret.to_str().unwrap(), &listen);
    let o = new(
        dir.path(),
        &[&["app", "--domain", "app.test"][..], &flags].concat(),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in [
        "redirect URI:             https://app.test/.portcullis/oidc/callback",
        "post-logout redirect URI: https://app.test/.portcullis/signed-out",
        "scopes:                   openid email profile",
        "ok   issuer:",
        "ok   client:",
        "ok   redirect_uri:",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    let config = dir.path().join("etc/app.yaml");
    let c = check_config(&config);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
    let main = nginx_main(&dir.path().join("etc"), "app", "app.test");
    let (code, report) = doctor(&config, &main);
    assert_eq!(failures(&report), Vec::<String>::new());
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn saml_domain_against_real_simplesamlphp() {
    let up = TestUpstream::start().await;
    let mut idp = common::saml::Idp::start(serde_json::json!([]));
    let dir = tempfile::tempdir().unwrap();
    let o = new(
        dir.path(),
        &[
            "wiki",
            "--domain",
            "wiki.test",
            "--upstream",
            &up.url(),
            "--saml",
            &idp.metadata_url(),
            "--forward-auth",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in [
        "SP entity ID:     https://wiki.test/.portcullis/saml/metadata",
        "ACS URL:          https://wiki.test/.portcullis/saml/acs",
        "SLO URL:          https://wiki.test/.portcullis/saml/slo",
        "ok   metadata:",
        "ok   certificates:",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    let etc = dir.path().join("etc");
    let md = std::fs::read_to_string(etc.join("wiki.sp-metadata.xml")).unwrap();
    assert!(
        md.contains("https://wiki.test/.portcullis/saml/acs"),
        "{md}"
    );
    let key = dir.path().join("state/saml-sp.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let snippet = std::fs::read_to_string(etc.join("wiki.nginx.conf")).unwrap();
    assert!(
        snippet.contains("auth_request /.portcullis/auth;"),
        "{snippet}"
    );
    assert!(snippet.contains(&format!("proxy_pass {};", up.url().trim_end_matches('/'))));
    let config = etc.join("wiki.yaml");
    let c = check_config(&config);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
    let (code, report) = doctor(&config, &nginx_main(&etc, "wiki", "wiki.test"));
    assert_eq!(failures(&report), Vec::<String>::new());
    assert_eq!(code, Some(0));
    idp.stop();
}
