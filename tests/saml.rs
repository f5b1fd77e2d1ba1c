//! SAML 2.0 login end to end: the real binary, a real upstream and the real
//! SimpleSAMLphp IdP (tests/idp/saml, started here on a free loopback
//! port). A small browser (cookie jar, redirects, forms) logs in; captured
//! responses are altered, re-signed with the IdP's key (the tests make that
//! key, so a forged-but-validly-signed answer can test each check behind
//! the signature) or signed with a stranger's key, and posted back.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::saml::*;
use common::*;
use serde_json::{Value, json};

const ACS: &str = "http://app.test/.portcullis/saml/acs";

// --- a small browser ------------------------------------------------------

#[derive(Default)]
struct Browser {
    /// port -> cookie name -> value (all hosts are 127.0.0.1).
    jar: BTreeMap<u16, BTreeMap<String, String>>,
    /// The loopback address this browser connects from (another client
    /// address for the gate); 127.0.0.1 when unset.
    from: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
struct Form {
    action: String,
    inputs: Vec<(String, String)>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url)
        .unwrap()
        .port_or_known_default()
        .unwrap()
}

impl Browser {
    fn from(ip: &str) -> Browser {
        Browser {
            from: Some(ip.parse().unwrap()),
            ..Browser::default()
        }
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(self.from)
            .build()
            .unwrap()
    }

    fn cookie_header(&self, url: &str) -> String {
        self.jar
            .get(&port_of(url))
            .map(|c| {
                c.iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn store(&mut self, url: &str, resp: &reqwest::Response) {
        let jar = self.jar.entry(port_of(url)).or_default();
        for sc in resp.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let nv = sc.split(';').next().unwrap();
            let (n, v) = nv.split_once('=').unwrap();
            if sc.contains("Max-Age=0")
                || sc.to_ascii_lowercase().contains("expires=thu, 01 jan 1970")
            {
                jar.remove(n.trim());
            } else {
                jar.insert(n.trim().to_string(), v.trim().to_string());
            }
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        assert_eq!(
            url::Url::parse(url).unwrap().host_str(),
            Some("127.0.0.1"),
            "{url}"
        );
        let resp = self
            .http()
            .get(url)
            .header("accept", BROWSER_ACCEPT)
            .header("cookie", self.cookie_header(url))
            .send()
            .await
            .unwrap();
        self.store(url, &resp);
        resp
    }

    async fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let resp = self
            .http()
            .post(url)
            .header("accept", BROWSER_ACCEPT)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", self.cookie_header(url))
            .body(body)
            .send()
            .await
            .unwrap();
        self.store(url, &resp);
        resp
    }

    /// GETs `url`, following redirects on loopback; returns final URL and body.
    async fn follow(&mut self, mut url: String) -> (String, String) {
        for _ in 0..10 {
            let resp = self.get(&url).await;
            if resp.status().is_redirection() {
                let loc = resp.headers()["location"].to_str().unwrap();
                url = url::Url::parse(&url)
                    .unwrap()
                    .join(loc)
                    .unwrap()
                    .to_string();
                continue;
            }
            return (url, resp.text().await.unwrap());
        }
        panic!("too many redirects");
    }
}

/// The `<form>`s of a page with their inputs (enough for SimpleSAMLphp).
fn forms(html: &str) -> Vec<Form> {
    let mut out: Vec<Form> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        let name: String = tag
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let attrs = parse_attrs(&tag[name.len()..]);
        let attr = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match name.to_ascii_lowercase().as_str() {
            "form" => out.push(Form {
                action: attr("action").unwrap_or_default(),
                inputs: vec![],
            }),
            "input" | "button" => {
                if let (Some(f), Some(n)) = (out.last_mut(), attr("name")) {
                    f.inputs.push((n, attr("value").unwrap_or_default()));
                }
            }
            _ => {}
        }
    }
    out
}

fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = s[start..i].to_ascii_lowercase();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            let (q, vs) = match b.get(i) {
                Some(b'"') => (Some(b'"'), i + 1),
                Some(b'\'') => (Some(b'\''), i + 1),
                _ => (None, i),
            };
            let mut j = vs;
            while j < b.len()
                && (if let Some(q) = q {
                    b[j] != q
                } else {
                    !b[j].is_ascii_whitespace()
                })
            {
                j += 1;
            }
            out.push((
                name,
                html_escape::decode_html_entities(&s[vs..j]).into_owned(),
            ));
            i = j + 1;
        } else if !name.is_empty() {
            out.push((name, String::new()));
        } else {
            i += 1;
        }
    }
    out
}

/// A SAMLResponse form as SimpleSAMLphp's post.php shows it.
struct Captured {
    xml: String,
    relay: String,
}

impl Captured {
    /// What SimpleSAMLphp's auto-POST `form` would send to the ACS.
    fn from_form(form: &Form) -> Captured {
        Captured {
            xml: String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(form.get("SAMLResponse").unwrap())
                    .unwrap(),
            )
            .unwrap(),
            relay: form.get("RelayState").unwrap_or_default().to_string(),
        }
    }
}

/// IdP pages from `idp_url` until the auto-POST form; logs in as `user`
/// when the login form shows.
async fn at_idp(b: &mut Browser, idp_url: String, user: &str) -> Form {
    let (mut url, mut page) = b.follow(idp_url).await;
    if let Some(login) = forms(&page)
        .into_iter()
        .find(|f| f.get("password").is_some())
    {
        let mut fields: Vec<(String, String)> = login.inputs.clone();
        for (n, v) in &mut fields {
            if n == "username" {
                *v = user.to_string();
            } else if n == "password" {
                *v = format!("{user}-pw");
            }
        }
        let action = url::Url::parse(&url)
            .unwrap()
            .join(if login.action.is_empty() {
                &url
            } else {
                &login.action
            })
            .unwrap()
            .to_string();
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let resp = b.post(&action, &refs).await;
        if resp.status().is_redirection() {
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            let next = url::Url::parse(&action)
                .unwrap()
                .join(&loc)
                .unwrap()
                .to_string();
            (url, page) = b.follow(next).await;
        } else {
            url = action;
            page = resp.text().await.unwrap();
        }
    }
    let _ = url;
    forms(&page)
        .into_iter()
        .find(|f| f.get("SAMLResponse").is_some())
        .unwrap_or_else(|| panic!("no SAMLResponse form in:\n{page}"))
}

/// Starts a login at the gate and returns the IdP URL it redirects to.
async fn start_login(b: &mut Browser, gate: &Gate, path: &str) -> String {
    let resp = b.get(&gate.url(path)).await;
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// Runs a login up to the IdP's answer, without posting it.
async fn capture(b: &mut Browser, gate: &Gate, user: &str, path: &str) -> Captured {
    let idp_url = start_login(b, gate, path).await;
    let form = at_idp(b, idp_url, user).await;
    assert_eq!(form.action, ACS);
    let xml = base64::engine::general_purpose::STANDARD
        .decode(form.get("SAMLResponse").unwrap())
        .unwrap();
    Captured {
        xml: String::from_utf8(xml).unwrap(),
        relay: form.get("RelayState").unwrap_or_default().to_string(),
    }
}

async fn post_acs(b: &mut Browser, gate: &Gate, xml: &str, relay: &str) -> reqwest::Response {
    let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
    b.post(
        &gate.url("/.portcullis/saml/acs"),
        &[("SAMLResponse", &encoded), ("RelayState", relay)],
    )
    .await
}

/// Posts the answer and follows the gate's redirect to the upstream echo.
async fn finish(b: &mut Browser, gate: &Gate, c: &Captured) -> Value {
    let resp = post_acs(b, gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with('/'), "{loc}");
    let resp = b.get(&gate.url(&loc)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

async fn login(b: &mut Browser, gate: &Gate, user: &str, path: &str) -> Value {
    let c = capture(b, gate, user, path).await;
    finish(b, gate, &c).await
}

fn header<'a>(echo: &'a Value, name: &str) -> &'a str {
    echo["headers"][name].as_str().unwrap_or("")
}

/// The audit reasons of failed logins, without the operator's fix that
/// misconfigurations add (`operator_fix_of` reads that).
fn failures(gate: &Gate) -> Vec<String> {
    gate.audit_events()
        .into_iter()
        .filter(|e| e["event"] == "login_failed")
        .map(|e| {
            let reason = e["reason"].as_str().unwrap_or("");
            reason.split(OPERATOR_FIX).next().unwrap_or("").to_string()
        })
        .collect()
}

const OPERATOR_FIX: &str = "; operator fix: ";

/// The fix of the last failed login, when it was a misconfiguration.
fn operator_fix_of(gate: &Gate) -> Option<String> {
    gate.events("login_failed").last().and_then(|e| {
        e["reason"]
            .as_str()?
            .split_once(OPERATOR_FIX)
            .map(|(_, f)| f.to_string())
    })
}

/// The status of a refused ACS post: a failure only the operator can fix
/// gets the "misconfigured" page (500), any other the 400 page.
fn refusal_status(reason: &str) -> u16 {
    const MISCONFIGURED: [&str; 9] = [
        "saml: the response carries no XML signature",
        "saml: a signature uses an algorithm that is not allowed",
        "saml: the signature names a certificate that is not in the IdP metadata",
        "saml: the assertion has expired or is not yet valid",
        "saml: the Issuer is not the IdP of the metadata",
        "saml: the assertion's Audience is not this SP",
        "saml: the SubjectConfirmation Recipient is not this ACS",
        "saml: Destination is not this ACS",
        "saml: the encrypted assertion cannot be decrypted with the SP key",
    ];
    if MISCONFIGURED.iter().any(|m| reason.starts_with(m)) {
        500
    } else {
        400
    }
}

/// Waits until the gate's audit log has `n` login failures.
fn wait_failures(gate: &Gate, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = failures(gate);
        if f.len() >= n || Instant::now() > deadline {
            return f;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- tests ----------------------------------------------------------------

#[tokio::test]
async fn login_with_response_or_assertion_signed_or_encrypted() {
    let variants = [
        ("http://app.test/sp-both", json!({})),
        (
            "http://app.test/sp-response",
            json!({"sign_assertion": false}),
        ),
        (
            "http://app.test/sp-assertion",
            json!({"sign_response": false}),
        ),
        (
            "http://app.test/sp-encrypted",
            json!({"encrypt_assertion": true}),
        ),
    ];
    let site = SamlSite::start(&variants).await;
    for (entity, _) in variants {
        let gate = site
            .gate(entity)
            .saml("  attributes:\n    extra:\n      affiliation: eduPersonAffiliation\n")
            .top("headers:\n  extra:\n    affiliation: X-Affiliation\n")
            .start();
        let mut b = Browser::default();
        // RelayState is the opaque transaction id only, never the path.
        let loc = start_login(&mut b, &gate, "/dashboard?tab=2").await;
        let relay = url::Url::parse(&loc)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "RelayState")
            .unwrap()
            .1
            .to_string();
        assert!(
            relay.len() == 32 && relay.bytes().all(|b| b.is_ascii_hexdigit()),
            "{relay}"
        );
        let c = capture(&mut b, &gate, "alice", "/dashboard?tab=2").await;
        if entity.ends_with("encrypted") {
            assert!(c.xml.contains("EncryptedAssertion"), "{entity}");
        }
        let echo = finish(&mut b, &gate, &c).await;
        assert_eq!(echo["uri"], "/dashboard?tab=2", "{entity}");
        assert_eq!(header(&echo, "x-forwarded-user"), "alice", "{entity}");
        assert_eq!(header(&echo, "x-forwarded-email"), "alice@example.com");
        assert_eq!(header(&echo, "x-forwarded-name"), "Alice Example");
        assert_eq!(header(&echo, "x-forwarded-groups"), "admins,staff");
        assert_eq!(header(&echo, "x-affiliation"), "member,staff");
        // The transaction cookie is gone, the session works on its own.
        assert!(
            !b.jar[&gate.addr.port()].contains_key(&format!("portcullis_txn_{}", c.relay)),
            "{:?}",
            b.jar
        );
        let echo = b
            .get(&gate.url("/again"))
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(header(&echo, "x-forwarded-user"), "alice");
        assert!(
            gate.audit_events()
                .iter()
                .any(|e| e["event"] == "login_succeeded" && e["idp"] == "saml")
        );
    }
}

// --- forging ---------------------------------------------------------------

fn span(xml: &str, open: &str, close: &str) -> (usize, usize) {
    let a = xml
        .find(open)
        .unwrap_or_else(|| panic!("{open} not in {xml}"));
    let b = a + xml[a..].find(close).unwrap() + close.len();
    (a, b)
}

fn assertion_of(xml: &str) -> String {
    let (a, b) = span(xml, "<saml:Assertion ", "</saml:Assertion>");
    xml[a..b].to_string()
}

fn strip_signature(xml: &str) -> String {
    let (a, b) = span(xml, "<ds:Signature", "</ds:Signature>");
    format!("{}{}", &xml[..a], &xml[b..])
}

/// Signs the (single) signature template in `xml` again with `key_pem`:
/// the digest and signature value are emptied and recomputed by xmlsec.
fn resign(xml: &str, key_pem: &[u8]) -> String {
    let mut out = xml.to_string();
    for tag in ["ds:DigestValue", "ds:SignatureValue"] {
        let (a, b) = span(&out, &format!("<{tag}>"), &format!("</{tag}>"));
        out = format!("{}<{tag}></{tag}>{}", &out[..a], &out[b..]);
    }
    let der = openssl::pkey::PKey::private_key_from_pem(key_pem)
        .unwrap()
        .private_key_to_der()
        .unwrap();
    use samael::crypto::CryptoProvider;
    samael::crypto::Crypto::sign_xml(out, &der).unwrap()
}

/// An unsigned assertion for bob with its own ID, made from `signed`.
fn evil_assertion(signed: &str) -> String {
    strip_signature(signed)
        .replacen(" ID=\"_", " ID=\"_evil", 1)
        .replace(">alice<", ">bob<")
        .replace("alice@example.com", "bob@example.org")
}

/// The base64 DER of a PEM certificate file, as in a `ds:X509Certificate`.
fn cert_b64(pem_file: &Path) -> String {
    std::fs::read_to_string(pem_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// Every `name="…"` attribute in `xml` set to `value`.
fn set_attr(xml: &str, name: &str, value: &str) -> String {
    let needle = format!(" {name}=\"");
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&needle) {
        let start = i + needle.len();
        let end = start + rest[start..].find('"').unwrap();
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Whether xmlsec verifies every signature of `xml` with the certificate
/// in `pem_file`, whatever the algorithm: samael's own verification with no
/// algorithm list, independent of Portcullis' checks.
fn verifies_with_any_algorithm(xml: &str, pem_file: &Path) -> Result<bool, String> {
    use samael::crypto::CryptoProvider;
    let der = openssl::x509::X509::from_pem(&std::fs::read(pem_file).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    let cert = samael::crypto::CertificateDer::from(der);
    match samael::crypto::Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &[cert],
        samael::crypto::ReduceMode::default(),
        None,
    ) {
        Ok(_) => Ok(true),
        Err(samael::crypto::CryptoError::InvalidSignature) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn attacks_are_refused_with_an_audit_event() {
    let entity = "http://app.test/sp-a";
    let site = SamlSite::start(&[(entity, json!({"sign_response": false}))]).await;
    let gate = site
        .gate(entity)
        // One transaction and one client post every case below: the
        // per-transaction and per-client budgets (tested on their own in
        // `one_client_flooding_the_acs_does_not_stop_another_login`) are
        // raised so that each case meets the check it is about.
        .saml("  acs_verify_limit:\n    per_transaction: 1000\n    per_client_burst: 1000\n")
        .start();
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/app").await;
    let key = site.idp.key_pem();
    let (stranger, stranger_cert) = {
        let dir = tempfile::tempdir().unwrap();
        let (k, c) = new_pair(dir.path(), "stranger");
        (std::fs::read(k).unwrap(), cert_b64(&c))
    };
    let orig = assertion_of(&c.xml);
    let with_assertion = |a: &str| c.xml.replace(&orig, a);
    let evil = evil_assertion(&orig);
    let (sig_a, sig_b) = span(&orig, "<ds:Signature", "</ds:Signature>");
    let orig_sig = &orig[sig_a..sig_b];
    let idp_cert = cert_b64(&site.idp.cert);
    assert!(c.xml.contains(&idp_cert), "the IdP names its certificate");
    let issuer = format!("<saml:Issuer>{}</saml:Issuer>", site.idp.metadata_url());
    assert!(c.xml.contains(&issuer), "{}", c.xml);
    let ten_minutes_ago = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();

    const NO_SIGNATURE: &str = "saml: the response carries no XML signature";
    const ALTERED: &str = "saml: the signature does not verify with the IdP's metadata keys (the signed content was altered, or another key signed it)";
    let sha224 = resign(
        &c.xml
            .replace("xmldsig-more#rsa-sha256", "xmldsig-more#rsa-sha224")
            .replace("xmlenc#sha256", "xmldsig-more#sha224"),
        &key,
    );
    // Positive control: the re-signed document verifies (xmlsec, any
    // algorithm), so only the algorithm rule can refuse it.
    assert_eq!(
        verifies_with_any_algorithm(&sha224, &site.idp.cert),
        Ok(true)
    );
    assert_eq!(
        verifies_with_any_algorithm(&c.xml, &site.idp.cert),
        Ok(true)
    );

    let mut cases: Vec<(&str, String, &str)> = vec![
        ("unsigned response", with_assertion(&evil), NO_SIGNATURE),
        ("signature removed", strip_signature(&c.xml), NO_SIGNATURE),
        (
            "assertion changed after signing",
            c.xml.replace(">alice@example.com</saml:AttributeValue>", ">bob@example.org</saml:AttributeValue>"),
            ALTERED,
        ),
        (
            "signed by a stranger's key, naming the stranger's certificate",
            resign(&c.xml.replace(">alice<", ">bob<").replace(&idp_cert, &stranger_cert), &stranger),
            "saml: the signature names a certificate that is not in the IdP metadata",
        ),
        (
            "signed by a stranger's key, naming the IdP's certificate",
            resign(&c.xml.replace(">alice<", ">bob<"), &stranger),
            ALTERED,
        ),
        (
            // Outside the allowed list; refused before any verification.
            "signed with RSA-SHA224 by the IdP's own key",
            sha224,
            "saml: a signature uses an algorithm that is not allowed (RSA or ECDSA with SHA-256/384/512 only)",
        ),
        (
            "expired assertion",
            resign(
                &c.xml
                    .replace("NotOnOrAfter=\"", "NotOnOrAfter=\"2020-01-01T00:00:00Z\" x=\"")
                    .replace("NotBefore=\"", "NotBefore=\"2019-01-01T00:00:00Z\" y=\""),
                &key,
            ),
            "saml: the assertion has expired or is not yet valid",
        ),
        (
            "NotBefore in the future",
            resign(
                &c.xml.replace("NotBefore=\"", "NotBefore=\"2099-01-01T00:00:00Z\" y=\""),
                &key,
            ),
            "saml: the assertion has expired or is not yet valid",
        ),
        (
            // Documented: IssueInstant at most clock_skew (60s) + 3 minutes old.
            "IssueInstant ten minutes old",
            resign(&set_attr(&c.xml, "IssueInstant", &ten_minutes_ago), &key),
            "saml: the assertion has expired or is not yet valid",
        ),
        (
            "Issuer of another IdP",
            resign(&c.xml.replace(&issuer, "<saml:Issuer>http://other-idp.test/metadata</saml:Issuer>"), &key),
            "saml: the Issuer is not the IdP of the metadata",
        ),
        (
            "SubjectConfirmation not bearer",
            resign(
                &c.xml.replace(
                    "Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"",
                    "Method=\"urn:oasis:names:tc:SAML:2.0:cm:holder-of-key\"",
                ),
                &key,
            ),
            "saml: no bearer SubjectConfirmation with the required data",
        ),
        (
            "wrong Audience",
            resign(
                &c.xml.replace(&format!("<saml:Audience>{entity}</saml:Audience>"), "<saml:Audience>http://other.test/sp</saml:Audience>"),
                &key,
            ),
            "saml: the assertion's Audience is not this SP",
        ),
        (
            "no AudienceRestriction",
            resign(
                &c.xml.replace(&format!("<saml:AudienceRestriction><saml:Audience>{entity}</saml:Audience></saml:AudienceRestriction>"), ""),
                &key,
            ),
            "saml: the assertion's Audience is not this SP",
        ),
        (
            "wrong Recipient",
            resign(&c.xml.replace(&format!("Recipient=\"{ACS}\""), "Recipient=\"http://evil.test/acs\""), &key),
            "saml: the SubjectConfirmation Recipient is not this ACS",
        ),
        (
            "wrong Destination",
            c.xml.replacen(&format!("Destination=\"{ACS}\""), "Destination=\"http://evil.test/acs\"", 1),
            "saml: Destination is not this ACS",
        ),
        (
            "signed InResponseTo of another request",
            {
                let irt = c.xml.split("InResponseTo=\"").nth(2).unwrap().split('"').next().unwrap().to_string();
                resign(&with_assertion(&orig.replace(&irt, "_someoneelse")), &key)
            },
            "saml: InResponseTo does not match this browser's login request",
        ),
        (
            "comment inside the NameID",
            resign(&c.xml.replace(">alice@example.com</saml:NameID>", ">alice@example.com.evil.example</saml:NameID>"), &key)
                .replace(">alice@example.com.evil.example<", ">alice@example.com<!---->.evil.example<"),
            "saml: the response is not well-formed SAML (it contains an XML comment)",
        ),
        (
            "IdP status not Success",
            c.xml.replace(
                "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/>",
                "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\"/><samlp:StatusMessage>account locked</samlp:StatusMessage>",
            ),
            "saml: the IdP answered with status Responder (account locked)",
        ),
    ];
    // XML Signature Wrapping: a second, unsigned assertion for bob in the
    // positions of the "On Breaking SAML" catalogue.
    let xsw = [
        (
            "XSW evil before signed",
            with_assertion(&format!("{evil}{orig}")),
        ),
        (
            "XSW evil after signed",
            with_assertion(&format!("{orig}{evil}")),
        ),
        (
            "XSW evil wraps signed",
            with_assertion(&evil.replacen(
                "</saml:Assertion>",
                &format!("{orig}</saml:Assertion>"),
                1,
            )),
        ),
        (
            "XSW signed inside the evil one's Signature Object",
            with_assertion(&evil.replacen(
                "<saml:Subject>",
                &format!(
                    "{}<ds:Object>{orig}</ds:Object></ds:Signature><saml:Subject>",
                    &orig_sig[..orig_sig.len() - "</ds:Signature>".len()]
                ),
                1,
            )),
        ),
        (
            "XSW signed in Extensions, evil in its place",
            with_assertion(&evil).replacen(
                "<samlp:Status>",
                &format!("<samlp:Extensions>{orig}</samlp:Extensions><samlp:Status>"),
                1,
            ),
        ),
        ("XSW evil response wraps the signed response", {
            let (ra, _) = span(&c.xml, "<samlp:Response", ">");
            let root_end = ra + c.xml[ra..].find('>').unwrap() + 1;
            let root = &c.xml[..root_end];
            format!(
                "{}<samlp:Extensions>{}</samlp:Extensions><samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>{evil}</samlp:Response>",
                root.replacen(" ID=\"_", " ID=\"_wrapper", 1),
                c.xml
            )
        }),
    ];
    for (name, xml) in xsw {
        cases.push((
            name,
            xml,
            "saml: the response is not well-formed SAML (it has more than one assertion)",
        ));
    }

    let mut wrong = Vec::new();
    for (i, (name, xml, why)) in cases.iter().enumerate() {
        let resp = post_acs(&mut b, &gate, xml, &c.relay).await;
        let status = resp.status();
        let session_set = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().contains("portcullis_session="));
        let body = resp.text().await.unwrap();
        if status != refusal_status(why) || session_set {
            wrong.push(format!(
                "{name}: status {status}, session minted: {session_set}"
            ));
        }
        if *name == "IdP status not Success"
            && !(body.contains("Responder") && body.contains("account locked"))
        {
            wrong.push(format!("{name}: the page does not show the IdP's status"));
        }
        let f = wait_failures(&gate, i + 1);
        if f.get(i).map(String::as_str) != Some(*why) {
            wrong.push(format!(
                "{name}: audit reason {:?}, expected {why:?}",
                f.get(i)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Another login in the same browser: the first answer does not fit it.
    let other = start_login(&mut b, &gate, "/other").await;
    let other_relay = url::Url::parse(&other)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .unwrap()
        .1
        .to_string();
    let resp = post_acs(&mut b, &gate, &c.xml, &other_relay).await;
    assert_eq!(resp.status(), 400);
    let n = cases.len() + 1;
    assert_eq!(
        wait_failures(&gate, n)[n - 1],
        "saml: InResponseTo does not match this browser's login request"
    );

    // Without its transaction cookie the answer is refused before any
    // signature work.
    let mut stranger_browser = Browser::default();
    let resp = post_acs(&mut stranger_browser, &gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        wait_failures(&gate, n + 1)[n],
        "saml: the login transaction cookie is missing (it expired, was blocked by the browser, or the login was started elsewhere)"
    );

    // The untouched answer works (so the refusals above were the checks),
    // and the same answer posted again, even with its transaction cookie
    // kept by an attacker, is a replay.
    let saved = b.jar.clone();
    let echo = finish(&mut b, &gate, &c).await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");
    assert_eq!(echo["uri"], "/app");
    let mut replayer = Browser {
        jar: saved,
        ..Browser::default()
    };
    let resp = post_acs(&mut replayer, &gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        wait_failures(&gate, n + 2)[n + 1],
        "saml: the assertion was already used (replay)"
    );

    // An unsolicited (IdP-initiated) answer while that is off.
    let form = at_idp(
        &mut b,
        format!(
            "{}?spentityid={}",
            site.idp.sso_url(),
            url::form_urlencoded::byte_serialize(entity.as_bytes()).collect::<String>()
        ),
        "alice",
    )
    .await;
    let xml = base64::engine::general_purpose::STANDARD
        .decode(form.get("SAMLResponse").unwrap())
        .unwrap();
    let resp = post_acs(
        &mut b,
        &gate,
        std::str::from_utf8(&xml).unwrap(),
        form.get("RelayState").unwrap_or(""),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        wait_failures(&gate, n + 3)[n + 2],
        "saml: unsolicited response while IdP-initiated login is off"
    );
    // Never a payload in the log.
    assert!(!gate.log().contains("SAMLResponse") && !gate.log().contains("PHNhbWxw"));
}

#[tokio::test]
async fn attributes_under_oids_and_adfs_claim_uris_and_outsiders_get_403() {
    let site = SamlSite::start(&[
        (
            "http://app.test/sp-uri",
            json!({"attribute_name_format": "uri", "nameid_format": "transient"}),
        ),
        (
            "http://app.test/sp-adfs",
            json!({"attribute_name_format": "adfs"}),
        ),
    ])
    .await;

    let gate = site.gate("http://app.test/sp-uri").start();
    let echo = login(&mut Browser::default(), &gate, "bob", "/").await;
    assert_eq!(header(&echo, "x-forwarded-user"), "bob");
    assert_eq!(header(&echo, "x-forwarded-email"), "bob@example.org");
    assert_eq!(header(&echo, "x-forwarded-name"), "Bob Builder");
    assert_eq!(header(&echo, "x-forwarded-groups"), "staff");

    let gate = site
        .gate("http://app.test/sp-adfs")
        .top("access:\n  allowed_groups: [staff]\n")
        .start();
    let echo = login(&mut Browser::default(), &gate, "alice", "/").await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice@example.com");
    assert_eq!(header(&echo, "x-forwarded-email"), "alice@example.com");
    assert_eq!(header(&echo, "x-forwarded-name"), "Alice Example");
    assert_eq!(header(&echo, "x-forwarded-groups"), "admins,staff");

    // carol is only in `contractors`.
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "carol", "/").await;
    let resp = post_acs(&mut b, &gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("You do not have access")
    );
    let denied = gate.events("access_denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["user"], "carol@example.com");
    assert_eq!(
        denied[0]["rule"],
        "allowed_groups/allowed_emails/allowed_email_domains/allowed_roles"
    );
    let resp = b.get(&gate.url("/")).await;
    assert_eq!(resp.status(), 302, "no session for carol");
}

#[tokio::test]
async fn sp_metadata_is_served_and_printed() {
    let entity = "http://app.test/sp-md";
    // The IdP checks the AuthnRequest signature with the SP certificate.
    let site = SamlSite::start(&[(entity, json!({"validate_signatures": true}))]).await;
    let gate = site.gate(entity).saml("  sign_requests: true\n").start();
    let resp = client()
        .get(gate.url("/.portcullis/saml/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/samlmetadata+xml"
    );
    let served = resp.text().await.unwrap();
    assert!(
        served.contains(&format!("entityID=\"{entity}\"")),
        "{served}"
    );
    assert!(served.contains("AuthnRequestsSigned=\"true\""));
    let cert_pem = std::fs::read_to_string(&site.pair.cert).unwrap();
    let cert_b64: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(served.contains(&cert_b64));

    let out = Command::new(bin())
        .arg("sp-metadata")
        .arg("--config")
        .arg(gate.dir.path().join("gate.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), served.trim());

    // Signed AuthnRequests (sign_requests: true) are what the IdP gets.
    let mut b = Browser::default();
    let loc = start_login(&mut b, &gate, "/").await;
    assert!(
        loc.contains("SigAlg=") && loc.contains("Signature="),
        "{loc}"
    );
    let form = at_idp(&mut b, loc, "alice").await;
    let c = Captured {
        xml: String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(form.get("SAMLResponse").unwrap())
                .unwrap(),
        )
        .unwrap(),
        relay: form.get("RelayState").unwrap().to_string(),
    };
    let echo = finish(&mut b, &gate, &c).await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");
}

/// Serves a metadata document the test controls; dropping it closes the port.
struct MdServer {
    addr: std::net::SocketAddr,
    body: std::sync::Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MdServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MdServer {
    async fn start(body: String) -> MdServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = std::sync::Arc::new(std::sync::Mutex::new(body));
        let b2 = body.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let b = b2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let text = b.lock().unwrap().clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(text)),
                            ))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
                });
            }
        });
        MdServer { addr, body, task }
    }

    fn url(&self) -> String {
        format!("http://{}/idp-metadata.xml", self.addr)
    }

    fn set(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }
}

// The metadata server must answer while `Gate::start` blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_url_down_at_start_uses_the_cache_or_fails_clearly() {
    let entity = "http://app.test/sp-cache";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let md = MdServer::start(get_text(&client(), &site.idp.metadata_url()).await).await;
    let state = tempfile::tempdir().unwrap();
    let yaml = site
        .gate(entity)
        .metadata_url(&md.url())
        .top(&format!("state_dir: {}\n", state.path().display()))
        .yaml();

    let gate = Gate::start(&yaml);
    drop(gate);
    assert!(state.path().join("saml-idp-metadata.xml").exists());

    let md_url = md.url();
    drop(md);
    let gate = Gate::start(&yaml);
    assert!(
        gate.log().contains("using the cached copy"),
        "{}",
        gate.log()
    );
    let echo = login(&mut Browser::default(), &gate, "alice", "/cached").await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");

    // Same, with an empty state directory: a clear error, no start.
    let fresh = tempfile::tempdir().unwrap();
    let yaml = site
        .gate(entity)
        .metadata_url(&md_url)
        .top(&format!("state_dir: {}\n", fresh.path().display()))
        .yaml()
        .replace("KEYFILE", fresh.path().join("keys.json").to_str().unwrap());
    let cfg = fresh.path().join("gate.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot load the IdP metadata"), "{err}");
    assert!(
        err.contains(&md_url) && err.contains("no usable cached copy"),
        "{err}"
    );
}

// The metadata server must answer while `Gate::start` blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_key_rollover_is_picked_up_by_the_metadata_refresh() {
    let entity = "http://app.test/sp-roll";
    let mut site = SamlSite::start(&[(entity, json!({"sign_response": false}))]).await;
    let md = MdServer::start(get_text(&client(), &site.idp.metadata_url()).await).await;
    let gate = site
        .gate(entity)
        .metadata_url(&md.url())
        .saml("  idp_metadata_refresh: 1s\n")
        .start();
    let echo = login(&mut Browser::default(), &gate, "alice", "/").await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");

    site.idp.restart_with_new_key(2);
    // The gate still knows only the old key: the new signature is refused.
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/").await;
    let resp = post_acs(&mut b, &gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 500, "the misconfigured page");
    assert_eq!(
        wait_failures(&gate, 1)[0],
        "saml: the signature names a certificate that is not in the IdP metadata"
    );
    let fix = operator_fix_of(&gate).unwrap_or_default();
    assert!(fix.contains("(a certificate rollover?)"), "{fix}");

    // The IdP publishes the new key; the refresh picks it up.
    md.set(get_text(&client(), &site.idp.metadata_url()).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gate.log().contains("IdP metadata updated") {
        assert!(Instant::now() < deadline, "no refresh: {}", gate.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let echo = login(&mut Browser::default(), &gate, "alice", "/").await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");
}

/// Guard rail 2 (docs/design.md): replayed or unsolicited posts never
/// reach the (leaky) signature verification, so memory stays flat across many of them.
#[tokio::test]
async fn many_acs_posts_do_not_grow_memory() {
    let entity = "http://app.test/sp-rss";
    let site = SamlSite::start(&[(entity, json!({"sign_response": false}))]).await;
    let gate = site.gate(entity).start();
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/").await;
    let cookie = b.cookie_header(&gate.url("/"));
    finish(&mut b, &gate, &c).await;

    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "SAMLResponse",
            &base64::engine::general_purpose::STANDARD.encode(&c.xml),
        )
        .append_pair("RelayState", &c.relay)
        .finish();
    let http = client();
    let post = |with_cookie: bool| {
        let mut r = http
            .post(gate.url("/.portcullis/saml/acs"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if with_cookie {
            r = r.header("cookie", cookie.clone());
        }
        r.send()
    };
    for i in 0..300 {
        assert_eq!(post(i % 2 == 0).await.unwrap().status(), 400);
    }
    let (before, _) = gate.rss_kb();
    for i in 0..3000 {
        assert_eq!(post(i % 2 == 0).await.unwrap().status(), 400);
    }
    let (after, _) = gate.rss_kb();
    eprintln!("gate RSS across 3000 refused ACS posts: {before} kB -> {after} kB");
    // Each was refused by a cheap check, never by a verification budget
    // (which would also keep memory flat, but only after verifying some).
    assert_eq!(
        tally(&wait_failures(&gate, 3300)),
        BTreeMap::from([
            ("saml: the assertion was already used (replay)".to_string(), 1650),
            (
                "saml: the login transaction cookie is missing (it expired, was blocked by the browser, or the login was started elsewhere)".to_string(),
                1650
            ),
        ])
    );
    // Through verification each post would leak about 4.6 kB (14 MB here).
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
}

#[tokio::test]
async fn logout_is_local_and_single_logout_goes_through_the_idp() {
    let entity = "http://app.test/sp-slo";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site.gate(entity).start();
    let mut b = Browser::default();
    login(&mut b, &gate, "alice", "/").await;

    let resp = b.get(&gate.url("/.portcullis/logout?rd=/bye")).await;
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&format!(
            "http://127.0.0.1:{}/saml2/idp/SingleLogoutService.php?SAMLRequest=",
            site.idp.port
        )),
        "{loc}"
    );
    assert!(loc.contains("RelayState=%2Fbye"), "{loc}");
    // The local session is gone at once.
    assert!(
        b.jar[&gate.addr.port()]
            .keys()
            .all(|k| !k.contains("portcullis_session"))
    );
    assert_eq!(b.get(&gate.url("/")).await.status(), 302);

    // The IdP ends its session and answers at the SP's SLO endpoint.
    idp_logout_returns_to(&mut b, &gate, loc, "/bye").await;
    // And the IdP session is over: the next login asks again.
    assert_idp_asks_for_the_password_again(&mut b, &gate).await;
}

/// The IdP's half of an SP-initiated logout: follows the LogoutRequest at
/// `loc` to the SP's SLO endpoint, which must send the browser on to `to`.
async fn idp_logout_returns_to(b: &mut Browser, gate: &Gate, loc: String, to: &str) {
    let rest = through_idp_logout(b, loc).await;
    assert!(
        rest.starts_with("/.portcullis/saml/slo?SAMLResponse="),
        "{rest}"
    );
    let resp = b.get(&gate.url(&rest)).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], to);
}

/// After a single logout the IdP's own session is over too: the next login
/// meets its password form.
async fn assert_idp_asks_for_the_password_again(b: &mut Browser, gate: &Gate) {
    let idp_url = start_login(b, gate, "/").await;
    let (_, page) = b.follow(idp_url).await;
    assert!(page.contains("password"), "IdP session survived the logout");
}

/// Follows the IdP's redirects from `url` (a LogoutRequest to it) until it
/// sends the browser back to the SP; returns that path.
async fn through_idp_logout(b: &mut Browser, mut url: String) -> String {
    for _ in 0..10 {
        let resp = b.get(&url).await;
        assert!(
            resp.status().is_redirection(),
            "{}",
            resp.text().await.unwrap()
        );
        let next = resp.headers()["location"].to_str().unwrap().to_string();
        if let Some(rest) = next.strip_prefix("http://app.test") {
            return rest.to_string();
        }
        url = url::Url::parse(&url)
            .unwrap()
            .join(&next)
            .unwrap()
            .to_string();
    }
    panic!("the IdP never answered the logout");
}

/// The text of the first `<open …>…</close>` element in `xml`, and its
/// opening tag.
fn element<'a>(xml: &'a str, open: &str, close: &str) -> (&'a str, &'a str) {
    let start = xml
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {xml}"));
    let tag_end = start + xml[start..].find('>').unwrap();
    let end = tag_end + xml[tag_end..].find(close).unwrap();
    (&xml[start..=tag_end], &xml[tag_end + 1..end])
}

/// The value of the first ` name="…"` attribute in `tag` (or in a whole
/// message).
fn attr_of<'a>(tag: &'a str, name: &str) -> &'a str {
    let at = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
    &tag[at..at + tag[at..].find('"').unwrap()]
}

#[tokio::test]
async fn sp_logout_names_the_session_as_issued_and_ends_on_the_signed_out_page() {
    let entity = "http://app.test/sp-slo";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site.gate(entity).start();
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/").await;
    finish(&mut b, &gate, &c).await;
    // What the IdP issued: the NameID (value, Format, qualifiers) and the SessionIndex.
    let (nid_tag, nid) = element(&c.xml, "<saml:NameID", "</saml:NameID>");
    let format = attr_of(nid_tag, "Format");
    // SimpleSAMLphp qualifies its NameIDs with the SP's entity id.
    let sp_qualifier = attr_of(nid_tag, "SPNameQualifier");
    assert_eq!(sp_qualifier, entity);
    assert!(!nid_tag.contains(" NameQualifier="), "{nid_tag}");
    let (authn_tag, _) = element(&c.xml, "<saml:AuthnStatement", "</saml:AuthnStatement>");
    let index = attr_of(authn_tag, "SessionIndex");
    assert!(!nid.is_empty() && !index.is_empty());

    let resp = b.get(&gate.url("/.portcullis/logout")).await;
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    let request = message_of(&loc, "SAMLRequest");
    assert!(
        request.contains(&format!(
            r#"<saml:NameID Format="{format}" SPNameQualifier="{sp_qualifier}">{nid}</saml:NameID><samlp:SessionIndex>{index}</samlp:SessionIndex></samlp:LogoutRequest>"#
        )),
        "{request}"
    );
    assert!(
        !url::Url::parse(&loc)
            .unwrap()
            .query_pairs()
            .any(|(k, _)| k == "RelayState"),
        "without rd there is no way back to keep: {loc}"
    );

    // The IdP ends its session; its answer lands on the signed-out page.
    idp_logout_returns_to(&mut b, &gate, loc, "/.portcullis/signed-out").await;
    let page = b.get(&gate.url("/.portcullis/signed-out")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("You are signed out"));
    // And the IdP session is over: the next login asks for the password.
    assert_idp_asks_for_the_password_again(&mut b, &gate).await;

    // An IdP that refuses the request: the user is told, signed out here,
    // and the log names what to check.
    for (status, told) in [
        (
            r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"/></samlp:StatusCode>"#,
            "did not end its own sign-in (Requester / UnknownPrincipal)",
        ),
        (
            r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:PartialLogout"/></samlp:StatusCode>"#,
            "could not sign you out of every other application",
        ),
    ] {
        let xml = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" InResponseTo="_x"><saml:Issuer>{}</saml:Issuer><samlp:Status>{status}</samlp:Status></samlp:LogoutResponse>"#,
            site.idp.metadata_url()
        );
        let query = redirect_query(&xml, "/bye", None).replacen("SAMLRequest=", "SAMLResponse=", 1);
        let resp = b
            .get(&gate.url(&format!("/.portcullis/saml/slo?{query}")))
            .await;
        assert_eq!(resp.status(), 200, "signed out here, whatever the IdP said");
        let body = resp.text().await.unwrap();
        assert!(body.contains("You are signed out"), "{body}");
        assert!(body.contains(told), "{body}");
    }
    assert!(
        gate.log().contains(
            "check that it accepts unsigned LogoutRequests (else set saml.sign_requests: true)"
        ),
        "{}",
        gate.log()
    );
}

/// Guard rails 7 and 9 (docs/design.md): an encrypted assertion needs a
/// signed Response, and a validly signed Response whose encrypted data is malformed (samael's
/// decrypt panics on it) is refused without taking the gate down.
#[tokio::test]
async fn encrypted_assertions_need_a_signed_response_and_bad_ciphertext_is_contained() {
    let site = SamlSite::start(&[
        (
            "http://app.test/sp-enc-unsigned",
            json!({"encrypt_assertion": true, "sign_response": false}),
        ),
        (
            "http://app.test/sp-enc",
            json!({"encrypt_assertion": true, "sign_assertion": false}),
        ),
    ])
    .await;

    let gate = site.gate("http://app.test/sp-enc-unsigned").start();
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/").await;
    assert!(c.xml.contains("EncryptedAssertion") && !c.xml.contains("<ds:Signature"));
    let resp = post_acs(&mut b, &gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 500, "the misconfigured page");
    assert_eq!(
        wait_failures(&gate, 1)[0],
        "saml: the response carries no XML signature"
    );
    assert_eq!(
        operator_fix_of(&gate).as_deref(),
        Some(
            "the IdP signs neither the Response nor the Assertion: enable signing of the assertion (or the response) for this application at the IdP"
        )
    );

    let gate = site.gate("http://app.test/sp-enc").start();
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/").await;
    // The last CipherValue is the assertion's data: cut it below one AES
    // block, keep the key, sign the Response again with the IdP's key.
    let end = c.xml.rfind("</xenc:CipherValue>").expect("xenc prefix");
    let start = c.xml[..end].rfind('>').unwrap() + 1;
    let broken = format!("{}AAAA{}", &c.xml[..start], &c.xml[end..]);
    let resp = post_acs(
        &mut b,
        &gate,
        &resign(&broken, &site.idp.key_pem()),
        &c.relay,
    )
    .await;
    // Undecryptable reads as the SP certificate the IdP has being wrong.
    assert_eq!(resp.status(), 500);
    assert_eq!(
        wait_failures(&gate, 1)[0],
        "saml: the encrypted assertion cannot be decrypted with the SP key"
    );
    // Still serving, and the real answer still logs in.
    let echo = finish(&mut b, &gate, &c).await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");
}

const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// `<p:name` with its namespace declared, or in the default namespace
/// when `p` is empty; and the prefix to use for the children.
fn open_ns(p: &str, name: &str, ns: &str) -> (String, String) {
    if p.is_empty() {
        (format!(r#"<{name} xmlns="{ns}""#), String::new())
    } else {
        (format!(r#"<{p}:{name} xmlns:{p}="{ns}""#), format!("{p}:"))
    }
}

/// An xmlsec EncryptedData template spelled with these prefixes (`""`:
/// the default namespace): rsa-oaep-mgf1p key transport, `data_alg` content.
fn xenc_template(ed: &str, key_info: &str, ek: &str, data_alg: &str) -> String {
    let (ed_open, e) = open_ns(ed, "EncryptedData", XENC);
    let (ki_open, k) = open_ns(key_info, "KeyInfo", DSIG);
    let (ek_open, x) = open_ns(ek, "EncryptedKey", XENC);
    format!(
        r#"{ed_open} Type="{XENC}Element"><{e}EncryptionMethod Algorithm="{XENC}{data_alg}"/>{ki_open}>{ek_open}><{x}EncryptionMethod Algorithm="{XENC}rsa-oaep-mgf1p"/><{x}CipherData><{x}CipherValue/></{x}CipherData></{x}EncryptedKey></{k}KeyInfo><{e}CipherData><{e}CipherValue/></{e}CipherData></{e}EncryptedData>"#
    )
}

/// Replaces the assertion of a captured response with its encryption by
/// the xmlsec1 CLI for `cert` (as xmlsec/Lasso IdPs do it) after the
/// `template`, and signs the Response again with the IdP's key.
fn encrypt_assertion(xml: &str, template: &str, cert: &Path, idp_key: &[u8]) -> String {
    let assertion = assertion_of(xml);
    // Standalone, the assertion needs the namespaces the Response declared.
    let root_end = xml.find("<samlp:Response").unwrap();
    let root_tag = &xml[root_end..root_end + xml[root_end..].find('>').unwrap()];
    let head_end = assertion.find('>').unwrap();
    let mut decls = String::new();
    for (name, value) in parse_attrs(root_tag.trim_start_matches("<samlp:Response")) {
        if name.starts_with("xmlns:") && !assertion[..head_end].contains(&format!("{name}=")) {
            decls.push_str(&format!(r#" {name}="{value}""#));
        }
    }
    let standalone = format!(
        "<saml:Assertion{decls}{}",
        &assertion["<saml:Assertion".len()..]
    );
    let dir = tempfile::tempdir().unwrap();
    let (doc, tmpl, out) = (
        dir.path().join("assertion.xml"),
        dir.path().join("template.xml"),
        dir.path().join("encrypted.xml"),
    );
    std::fs::write(&doc, standalone).unwrap();
    std::fs::write(&tmpl, template).unwrap();
    let session_key = if template.contains("aes256-cbc") {
        "aes-256"
    } else {
        "aes-128"
    };
    let status = Command::new("xmlsec1")
        .args(["encrypt", "--pubkey-cert-pem"])
        .arg(cert)
        .args(["--session-key", session_key, "--xml-data"])
        .arg(&doc)
        .arg("--output")
        .arg(&out)
        .arg(&tmpl)
        .status()
        .expect("xmlsec1 (Debian package xmlsec1) is installed");
    assert!(status.success(), "xmlsec1 encrypt failed");
    let encrypted = std::fs::read_to_string(&out).unwrap();
    let data = &encrypted[encrypted.find("?>").map_or(0, |i| i + 2)..].trim();
    let replaced = xml.replace(
        &assertion,
        &format!("<saml:EncryptedAssertion>{data}</saml:EncryptedAssertion>"),
    );
    resign(&replaced, idp_key)
}

/// Issue 17 §2: encrypted assertions log in whatever the prefixes of
/// XML Encryption and the KeyInfo: SimpleSAMLphp's `xenc:`/`ds:`,
/// xmlsec/Lasso's and .NET EncryptedXml's default namespaces, AD FS's
/// mix, `dsig:`. Encrypted by xmlsec1 for the SP certificate with the
/// algorithms the SP metadata advertises; a key mismatch is named.
#[tokio::test]
async fn encrypted_assertions_in_every_namespace_spelling_log_in() {
    let entity = "http://app.test/sp-enc-styles";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site.gate(entity).start();
    let (pair, idp) = (&site.pair, &site.idp);
    for (ed, key_info, ek, alg) in [
        ("xenc", "ds", "xenc", "aes128-cbc"),
        ("", "", "", "aes256-cbc"),
        ("", "", "", "aes128-cbc"),
        ("xenc", "", "e", "aes256-cbc"),
        ("xenc", "dsig", "xenc", "aes256-cbc"),
        ("", "ds", "xenc", "aes128-cbc"),
    ] {
        let style =
            format!("EncryptedData {ed:?}, KeyInfo {key_info:?}, EncryptedKey {ek:?}, {alg}");
        let mut b = Browser::default();
        let c = capture(&mut b, &gate, "alice", "/enc").await;
        let template = xenc_template(ed, key_info, ek, alg);
        let xml = encrypt_assertion(&c.xml, &template, &pair.cert, &idp.key_pem());
        assert!(!xml.contains("<saml:Assertion"), "{style}");
        if key_info.is_empty() {
            assert!(
                xml.contains(&format!(r#"<KeyInfo xmlns="{DSIG}">"#)),
                "{style}"
            );
        }
        let echo = finish(
            &mut b,
            &gate,
            &Captured {
                xml,
                relay: c.relay,
            },
        )
        .await;
        assert_eq!(echo["uri"], "/enc", "{style}");
        assert_eq!(header(&echo, "x-forwarded-user"), "alice", "{style}");
        assert_eq!(
            header(&echo, "x-forwarded-email"),
            "alice@example.com",
            "{style}"
        );
        assert_eq!(
            header(&echo, "x-forwarded-name"),
            "Alice Example",
            "{style}"
        );
        assert_eq!(
            header(&echo, "x-forwarded-groups"),
            "admins,staff",
            "{style}"
        );
    }
    assert_eq!(failures(&gate), Vec::<String>::new());

    // Encrypted for a certificate that is not the SP's (an old one).
    let other = tempfile::tempdir().unwrap();
    let (_, stranger) = new_pair(other.path(), "old-sp");
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/enc").await;
    let xml = encrypt_assertion(
        &c.xml,
        &xenc_template("", "", "", "aes256-cbc"),
        &stranger,
        &idp.key_pem(),
    );
    let resp = post_acs(&mut b, &gate, &xml, &c.relay).await;
    assert_eq!(resp.status(), 500);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Sign-in to this application is misconfigured") && !page.contains("decrypt"),
        "{page}"
    );
    assert_eq!(
        wait_failures(&gate, 1),
        ["saml: the encrypted assertion cannot be decrypted with the SP key"]
    );
    let fix = operator_fix_of(&gate).unwrap_or_default();
    assert!(
        fix.starts_with("the IdP encrypts for another certificate: register Portcullis' current SP certificate (in the SP metadata at "),
        "{fix}"
    );
}

#[tokio::test]
async fn idp_initiated_login_when_allowed() {
    let entity = "http://app.test/sp-idpinit";
    let site = SamlSite::start(&[(entity, json!({"sign_response": false}))]).await;
    let gate = site
        .gate(entity)
        .saml("  allow_idp_initiated: true\n")
        .start();
    let mut b = Browser::default();
    let start = format!(
        "{}?spentityid={}&RelayState=%2Freports%3Fy%3D1",
        site.idp.sso_url(),
        url::form_urlencoded::byte_serialize(entity.as_bytes()).collect::<String>()
    );
    let form = at_idp(&mut b, start.clone(), "bob").await;
    let c = Captured::from_form(&form);
    assert!(!c.xml.contains("InResponseTo"));
    let echo = finish(&mut b, &gate, &c).await;
    assert_eq!(header(&echo, "x-forwarded-user"), "bob");
    assert_eq!(echo["uri"], "/reports?y=1");

    // A RelayState pointing elsewhere lands on the app's root instead.
    let form = at_idp(
        &mut b,
        start.replace("%2Freports%3Fy%3D1", "https%3A%2F%2Fevil.test%2F"),
        "bob",
    )
    .await;
    let c = Captured::from_form(&form);
    let resp = post_acs(&mut b, &gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/");

    // Even so, an answer to an SP-initiated login is bound to its browser.
    let mut alice = Browser::default();
    let solicited = capture(&mut alice, &gate, "alice", "/").await;
    let resp = post_acs(
        &mut Browser::default(),
        &gate,
        &solicited.xml,
        &solicited.relay,
    )
    .await;
    assert_eq!(resp.status(), 400);
    // And with its InResponseTo stripped from the envelope only, the signed
    // SubjectConfirmationData still names the request: refused.
    let irt = attr_of(&solicited.xml, "InResponseTo").to_string();
    let stripped = solicited
        .xml
        .replacen(&format!(" InResponseTo=\"{irt}\""), "", 1);
    let resp = post_acs(&mut Browser::default(), &gate, &stripped, "").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        wait_failures(&gate, 2),
        [
            "saml: the login transaction cookie is missing (it expired, was blocked by the browser, or the login was started elsewhere)",
            "saml: InResponseTo does not match this browser's login request",
        ]
    );
}

#[test]
fn saml_config_examples_name_the_sp_urls() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("saml-") {
            continue;
        }
        let yaml = std::fs::read_to_string(&path).unwrap();
        let c = portcullis::config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let s = c.saml.unwrap_or_else(|| panic!("{name}: no saml section"));
        assert_eq!(
            s.sp_entity_id, "https://app.example.com/.portcullis/saml/metadata",
            "{name}"
        );
        assert!(
            yaml.contains("https://app.example.com/.portcullis/saml/acs"),
            "{name} must say the ACS URL"
        );
        n += 1;
    }
    assert_eq!(n, 8);
}

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// A LogoutRequest as SimpleSAMLphp sends it.
fn logout_request_xml(
    id: &str,
    issue_instant: chrono::DateTime<chrono::Utc>,
    issuer: &str,
    destination: &str,
    name_id: &str,
    format: &str,
) -> String {
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{}" Destination="{destination}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID SPNameQualifier="http://app.test/sp-idpslo" Format="{format}">{name_id}</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>"#,
        issue_instant.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// The HTTP-Redirect query for `xml`, signed RSA-SHA256 with `key_pem`
/// (SAML bindings §3.4.4.1), or unsigned.
fn redirect_query(xml: &str, relay: &str, key_pem: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut deflated = Vec::new();
    let mut e = flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::default());
    e.write_all(xml.as_bytes()).unwrap();
    e.finish().unwrap();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair(
        "SAMLRequest",
        &base64::engine::general_purpose::STANDARD.encode(&deflated),
    );
    q.append_pair("RelayState", relay);
    let Some(key_pem) = key_pem else {
        return q.finish();
    };
    q.append_pair("SigAlg", RSA_SHA256);
    let signed = q.finish();
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    signer.update(signed.as_bytes()).unwrap();
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
    let tail: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Signature", &sig)
        .finish();
    format!("{signed}&{tail}")
}

/// The LogoutResponse XML in a redirect to the IdP.
fn logout_response_of(location: &str) -> String {
    message_of(location, "SAMLResponse")
}

/// The XML of the HTTP-Redirect message `param` in `location`.
fn message_of(location: &str, param: &str) -> String {
    use std::io::Read;
    let b64 = url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == param)
        .unwrap()
        .1
        .to_string();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(raw.as_slice())
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

/// Follows SimpleSAMLphp's IdP-initiated logout (initSLO) through the
/// gate; returns the gate URL the IdP's LogoutRequest came to.
async fn idp_initiated_slo(b: &mut Browser, gate: &Gate, idp: &Idp) -> String {
    let done = format!("http://127.0.0.1:{}/saml2/idp/metadata.php", idp.port);
    let mut url = format!(
        "http://127.0.0.1:{}/saml2/idp/initSLO.php?RelayState={}",
        idp.port,
        url::form_urlencoded::byte_serialize(done.as_bytes()).collect::<String>()
    );
    let mut at_gate = None;
    for _ in 0..10 {
        let resp = b.get(&url).await;
        if !resp.status().is_redirection() {
            break;
        }
        let next = resp.headers()["location"].to_str().unwrap().to_string();
        url = match next.strip_prefix("http://app.test") {
            Some(rest) => {
                assert!(
                    rest.starts_with("/.portcullis/saml/slo?SAMLRequest="),
                    "{rest}"
                );
                at_gate = Some(gate.url(rest));
                gate.url(rest)
            }
            None => url::Url::parse(&url)
                .unwrap()
                .join(&next)
                .unwrap()
                .to_string(),
        };
        if url == done {
            break;
        }
    }
    assert_eq!(url, done, "the IdP did not finish the logout");
    at_gate.expect("the IdP never sent the LogoutRequest")
}

/// An IdP-initiated LogoutRequest ends
/// the session only when it is signed by the IdP over exactly the
/// parameters used, fresh, not replayed, from the IdP, for this endpoint
/// and for this session's NameID. The request signer here is the test's
/// own (openssl over the query bytes), checked by a valid request that
/// does end the session.
#[tokio::test]
async fn idp_initiated_logout_is_signed_fresh_once_and_for_this_session() {
    let entity = "http://app.test/sp-idpslo";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site.gate(entity).start();
    let slo = "/.portcullis/saml/slo";
    let dest = format!("http://app.test{slo}");
    let issuer = site.idp.metadata_url();
    let key = site.idp.key_pem();
    let stranger = {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = new_pair(dir.path(), "stranger");
        std::fs::read(k).unwrap()
    };
    let now = chrono::Utc::now;
    let mut n = 0;
    let mut fresh_id = || {
        n += 1;
        format!("_lr{n}")
    };
    let alice_req = |id: &str, at| {
        logout_request_xml(id, at, &issuer, &dest, "alice@example.com", EMAIL_FORMAT)
    };

    let mut b = Browser::default();
    login(&mut b, &gate, "alice", "/").await;
    assert_eq!(b.get(&gate.url("/")).await.status(), 200);

    let signed_for_bob = redirect_query(
        &logout_request_xml(
            &fresh_id(),
            now(),
            &issuer,
            &dest,
            "bob@example.org",
            EMAIL_FORMAT,
        ),
        "/",
        Some(&key),
    );
    let refused: Vec<(&str, String, &str)> = vec![
        (
            "well-formed, signed by a stranger's key",
            redirect_query(&alice_req(&fresh_id(), now()), "/", Some(&stranger)),
            "saml logout: the signature does not verify with a signing key of the IdP metadata",
        ),
        (
            "well-formed, unsigned",
            redirect_query(&alice_req(&fresh_id(), now()), "/", None),
            "saml logout: the message is not signed (no SigAlg and Signature parameters)",
        ),
        (
            "signed, RelayState changed after signing",
            redirect_query(&alice_req(&fresh_id(), now()), "/", Some(&key))
                .replace("RelayState=%2F", "RelayState=%2Fother"),
            "saml logout: the signature does not verify with a signing key of the IdP metadata",
        ),
        (
            "IssueInstant five minutes old",
            redirect_query(
                &alice_req(&fresh_id(), now() - chrono::Duration::minutes(5)),
                "/",
                Some(&key),
            ),
            "saml logout: IssueInstant is older than the clock skew allows",
        ),
        (
            "IssueInstant five minutes ahead",
            redirect_query(
                &alice_req(&fresh_id(), now() + chrono::Duration::minutes(5)),
                "/",
                Some(&key),
            ),
            "saml logout: IssueInstant is later than now plus the clock skew",
        ),
        (
            "Issuer of another IdP",
            redirect_query(
                &logout_request_xml(
                    &fresh_id(),
                    now(),
                    "http://other-idp.test/md",
                    &dest,
                    "alice@example.com",
                    EMAIL_FORMAT,
                ),
                "/",
                Some(&key),
            ),
            "saml logout: the Issuer is missing or is not the IdP of the metadata",
        ),
        (
            "Destination of another SP",
            redirect_query(
                &logout_request_xml(
                    &fresh_id(),
                    now(),
                    &issuer,
                    "http://other.test/slo",
                    "alice@example.com",
                    EMAIL_FORMAT,
                ),
                "/",
                Some(&key),
            ),
            "saml logout: Destination is not this SLO endpoint",
        ),
        (
            // Before: the signature was checked on the first raw SAMLRequest
            // and the first decoded one was used.
            "unsigned request for alice under an encoded name, before bob's signed one",
            format!(
                "SAML%52equest={}&{signed_for_bob}",
                redirect_query(&alice_req(&fresh_id(), now()), "/", None)
                    .strip_prefix("SAMLRequest=")
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap()
            ),
            "saml logout: the query carries SAMLRequest under a percent-encoded name",
        ),
        (
            "second SAMLRequest after a signed one",
            format!(
                "{signed_for_bob}&{}",
                redirect_query(&alice_req(&fresh_id(), now()), "/", None)
                    .split('&')
                    .next()
                    .unwrap()
            ),
            "saml logout: the query carries SAMLRequest more than once",
        ),
        (
            "second SigAlg",
            format!("{signed_for_bob}&SigAlg=x"),
            "saml logout: the query carries SigAlg more than once",
        ),
        (
            "second Signature",
            format!("{signed_for_bob}&Signature=AAAA"),
            "saml logout: the query carries Signature more than once",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, query, why) in &refused {
        let before = gate.events("idp_logout").len();
        let resp = b.get(&gate.url(&format!("{slo}?{query}"))).await;
        if resp.status() != 400 {
            wrong.push(format!("{name}: status {}", resp.status()));
        }
        let ev = gate.events("idp_logout");
        match ev.get(before) {
            Some(e) if e["outcome"] == "refused" && e["reason"] == *why => {}
            other => wrong.push(format!("{name}: audit {other:?}, expected {why:?}")),
        }
        if b.get(&gate.url("/")).await.status() != 200 {
            wrong.push(format!("{name}: the session was ended"));
            login(&mut b, &gate, "alice", "/").await;
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Signed and fresh, but for another NameID (another user, or alice's
    // value in another Format): the session is kept and the IdP is told
    // this browser had no session of that principal.
    let alice_persistent = logout_request_xml(
        "_other_format",
        now(),
        &issuer,
        &dest,
        "alice@example.com",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    );
    for (name, query, id) in [
        ("bob's NameID", signed_for_bob.clone(), "_lr1"),
        (
            "alice's value, persistent Format",
            redirect_query(&alice_persistent, "/", Some(&key)),
            "_other_format",
        ),
    ] {
        let before = gate.events("idp_logout").len();
        let resp = b.get(&gate.url(&format!("{slo}?{query}"))).await;
        assert_eq!(resp.status(), 302, "{name}");
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(
            loc.starts_with(&format!(
                "http://127.0.0.1:{}/saml2/idp/SingleLogoutService.php?SAMLResponse=",
                site.idp.port
            )),
            "{name}: {loc}"
        );
        let xml = logout_response_of(&loc);
        assert!(
            xml.contains(&format!("InResponseTo=\"{id}\"")),
            "{name}: {xml}"
        );
        assert!(
            xml.contains(r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"/></samlp:StatusCode>"#),
            "{name}: {xml}"
        );
        assert!(
            resp.headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().contains("portcullis_session")),
            "{name}: the session cookie was touched"
        );
        let ev = &gate.events("idp_logout")[before];
        assert_eq!(ev["outcome"], "ignored", "{name}");
        assert_eq!(ev["user"], "alice", "{name}");
        assert_eq!(b.get(&gate.url("/")).await.status(), 200, "{name}");
    }

    // The real thing: SimpleSAMLphp's own LogoutRequest ends the session
    // and the IdP accepts the answer; a copy of the same cookie held by
    // another client (a second device, a stolen copy) dies with it, because
    // the logout revokes the IdP session its SessionIndex names.
    let copy = b.cookie_header(&gate.url("/"));
    assert_eq!(api_get(&client(), gate.url("/"), &copy).await.status(), 200);
    let revoked_before = gate.events("revoked").len();
    let real = idp_initiated_slo(&mut b, &gate, &site.idp).await;
    assert_eq!(
        b.get(&gate.url("/")).await.status(),
        302,
        "the session survived"
    );
    assert_eq!(
        gate.events("idp_logout").last().unwrap()["outcome"],
        "ended"
    );
    assert_eq!(
        api_get(&client(), gate.url("/"), &copy).await.status(),
        401,
        "the copy of the cookie survived the IdP's logout"
    );
    let revoked = gate.events("revoked");
    assert_eq!(revoked.len(), revoked_before + 1, "{revoked:#?}");
    let r = &revoked[revoked_before];
    assert_eq!(
        (r["source"].as_str(), r["kind"].as_str(), r["by"].as_str()),
        (
            Some("saml_logout"),
            Some("idp_session"),
            Some(format!("saml:{issuer}").as_str())
        ),
        "{r}"
    );

    // Replayed, in a new session of the same user: refused, session kept.
    login(&mut b, &gate, "alice", "/").await;
    let resp = b.get(&real).await;
    assert_eq!(resp.status(), 400);
    let last = gate.events("idp_logout").last().unwrap().clone();
    assert_eq!(
        (last["outcome"].as_str(), last["reason"].as_str()),
        (
            Some("refused"),
            Some("saml logout: this LogoutRequest ID was already used (replay)")
        )
    );
    assert_eq!(b.get(&gate.url("/")).await.status(), 200);

    // The test's own signer makes requests the gate accepts (so the
    // refusals above were for their reasons).
    let resp = b
        .get(&gate.url(&format!(
            "{slo}?{}",
            redirect_query(&alice_req("_good", now()), "/back", Some(&key))
        )))
        .await;
    assert_eq!(resp.status(), 302);
    let xml = logout_response_of(resp.headers()["location"].to_str().unwrap());
    assert!(
        xml.contains(r#"InResponseTo="_good""#)
            && xml.contains(r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#),
        "{xml}"
    );
    assert_eq!(
        b.get(&gate.url("/")).await.status(),
        302,
        "the session survived"
    );
    // Never a payload in the log.
    assert!(!gate.log().contains("SAMLRequest="));
}

/// With https and secure cookies (the default), the transaction cookie is
/// `SameSite=None; Secure` so the IdP's cross-site POST carries it, while
/// the session cookie stays `Lax`.
#[tokio::test]
async fn secure_deployment_uses_a_cross_site_transaction_cookie() {
    let entity = "https://app.test/.portcullis/saml/metadata";
    let acs = "https://app.test/.portcullis/saml/acs";
    let site = SamlSite::start(&[(
        entity,
        json!({"acs_url": acs, "slo_url": "https://app.test/.portcullis/saml/slo"}),
    )])
    .await;
    let SamlSite { up, idp, pair } = &site;
    let yaml = format!(
        "domain: app.test\nlisten: 127.0.0.1:0\nupstream:\n  url: {}\nsession:\n  key_file: KEYFILE\nlog:\n  format: json\n  level: info\nsaml:\n  idp_metadata_url: {}\n  sp_key_file: {}\n  sp_cert_file: {}\n",
        up.url(),
        idp.metadata_url(),
        pair.key.display(),
        pair.cert.display()
    );
    let gate = Gate::start(&yaml);
    let mut b = Browser::default();
    let resp = b.get(&gate.url("/secure")).await;
    assert_eq!(resp.status(), 302);
    let txn = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.contains("_txn_"))
        .unwrap();
    assert!(txn.starts_with("__Host-portcullis_txn_"), "{txn}");
    assert!(
        txn.contains("Secure") && txn.contains("SameSite=None") && txn.contains("HttpOnly"),
        "{txn}"
    );
    let form = at_idp(
        &mut b,
        resp.headers()["location"].to_str().unwrap().to_string(),
        "alice",
    )
    .await;
    assert_eq!(form.action, acs);
    let resp = b
        .post(
            &gate.url("/.portcullis/saml/acs"),
            &[
                ("SAMLResponse", form.get("SAMLResponse").unwrap()),
                ("RelayState", form.get("RelayState").unwrap()),
            ],
        )
        .await;
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("__Host-portcullis_session="))
        .unwrap();
    assert!(
        session.contains("SameSite=Lax") && session.contains("Secure"),
        "{session}"
    );
    let echo: Value = b.get(&gate.url("/secure")).await.json().await.unwrap();
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");
}

/// The README promises SHA-1 is refused: a real IdP signing with
/// RSA-SHA1 is refused for the algorithm, while the same signature
/// verifies when no algorithm rule applies (positive control).
#[tokio::test]
async fn rsa_sha1_signatures_from_the_idp_are_refused() {
    let entity = "http://app.test/sp-sha1";
    let site = SamlSite::start(&[(
        entity,
        json!({"signature_algorithm": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"}),
    )])
    .await;
    let gate = site.gate(entity).start();
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/").await;
    assert!(
        c.xml.contains(
            r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/>"#
        ),
        "{}",
        c.xml
    );
    assert_eq!(
        verifies_with_any_algorithm(&c.xml, &site.idp.cert),
        Ok(true)
    );
    let resp = post_acs(&mut b, &gate, &c.xml, &c.relay).await;
    // A real IdP set to sign with SHA-1: the user reads one sentence and
    // the request id, the operator the fix.
    assert_eq!(resp.status(), 500);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Sign-in to this application is misconfigured") && page.contains(&rid),
        "{page}"
    );
    for raw in ["sha1", "SHA", "signature", "algorithm"] {
        assert!(!page.contains(raw), "the user sees `{raw}`: {page}");
    }
    assert_eq!(
        wait_failures(&gate, 1),
        [
            "saml: a signature uses an algorithm that is not allowed (RSA or ECDSA with SHA-256/384/512 only)"
        ]
    );
    assert_eq!(
        operator_fix_of(&gate).as_deref(),
        Some(
            "the IdP signs with an algorithm Portcullis refuses (SHA-1 or weaker): set the signature algorithm of this application at the IdP to RSA-SHA256"
        )
    );
    assert!(
        gate.log().contains("SAML sign-in is misconfigured"),
        "the log line names it"
    );
    assert_eq!(b.get(&gate.url("/")).await.status(), 302, "no session");
}

/// The AuthnRequest ID in a login redirect to the IdP.
fn request_id_of(idp_url: &str) -> String {
    attr_of(&message_of(idp_url, "SAMLRequest"), "ID").to_string()
}

fn relay_of(idp_url: &str) -> String {
    url::Url::parse(idp_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .unwrap()
        .1
        .to_string()
}

/// `n` of each reason, in any order.
fn tally(reasons: &[String]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for r in reasons {
        *t.entry(r.clone()).or_default() += 1;
    }
    t
}

/// Anyone can get transaction cookies whose InResponseTo
/// reaches signature verification. One client (here 127.0.0.2) flooding
/// the ACS with junk, or one transaction cookie posted from many
/// addresses, spends only its own budget: another client's real login
/// goes through. The shared budget is made small and slow to refill, so
/// that without the per-client and per-transaction budgets the floods
/// would leave none for the real login.
#[tokio::test]
async fn one_client_flooding_the_acs_does_not_stop_another_login() {
    let entity = "http://app.test/sp-flood";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site.gate(entity)
        .saml("  acs_verify_limit:\n    rate: 0.05\n    burst: 12\n    per_client_rate: 0.01\n    per_client_burst: 4\n    per_transaction: 2\n").start();
    const ALTERED: &str = "saml: the signature does not verify with the IdP's metadata keys (the signed content was altered, or another key signed it)";
    const CLIENT_SPENT: &str =
        "saml: too many responses to verify right now (this client address's budget is spent)";
    const TXN_SPENT: &str =
        "saml: too many responses to verify right now (this login transaction's budget is spent)";

    // The attacker's template: its own signed answer (as carol).
    let mut attacker = Browser::from("127.0.0.2");
    let tmpl = capture(&mut attacker, &gate, "carol", "/").await;
    let tmpl_irt = attr_of(&tmpl.xml, "InResponseTo").to_string();
    let tmpl_aid = attr_of(&assertion_of(&tmpl.xml), "ID").to_string();
    let junk_for = |request_id: &str, n: usize| {
        tmpl.xml
            .replace(&tmpl_irt, request_id)
            .replace(&tmpl_aid, &format!("{tmpl_aid}{n}"))
    };

    // Alice is at the IdP while the flood runs; she posts right after it.
    let mut alice = Browser::default();
    let alice_answer = capture(&mut alice, &gate, "alice", "/first").await;

    // Flood 1: 40 junk answers from one address, each with a fresh
    // transaction of its own.
    let before = failures(&gate).len();
    for n in 0..40 {
        let mut f = Browser::from("127.0.0.2");
        let loc = start_login(&mut f, &gate, "/").await;
        let junk = junk_for(&request_id_of(&loc), n);
        assert_eq!(
            post_acs(&mut f, &gate, &junk, &relay_of(&loc))
                .await
                .status(),
            400
        );
    }
    let flood: Vec<String> = wait_failures(&gate, before + 40)[before..].to_vec();
    assert_eq!(
        tally(&flood),
        BTreeMap::from([(ALTERED.to_string(), 4), (CLIENT_SPENT.to_string(), 36)])
    );
    let echo = finish(&mut alice, &gate, &alice_answer).await;
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");
    assert_eq!(echo["uri"], "/first");

    // Flood 2: one transaction cookie, copied to 20 addresses.
    let mut bob = Browser::default();
    let bob_answer = capture(&mut bob, &gate, "bob", "/second").await;
    let mut holder = Browser::from("127.0.0.3");
    let loc = start_login(&mut holder, &gate, "/").await;
    let (rid, relay) = (request_id_of(&loc), relay_of(&loc));
    let before = failures(&gate).len();
    for n in 0..20 {
        let mut copy = Browser {
            jar: holder.jar.clone(),
            from: Some(format!("127.0.0.{}", 10 + n).parse().unwrap()),
        };
        let junk = junk_for(&rid, 100 + n);
        assert_eq!(
            post_acs(&mut copy, &gate, &junk, &relay).await.status(),
            400
        );
    }
    let flood: Vec<String> = wait_failures(&gate, before + 20)[before..].to_vec();
    assert_eq!(
        tally(&flood),
        BTreeMap::from([(ALTERED.to_string(), 2), (TXN_SPENT.to_string(), 18)])
    );
    let echo = finish(&mut bob, &gate, &bob_answer).await;
    assert_eq!(header(&echo, "x-forwarded-user"), "bob");

    // Each refusal is counted by budget.
    let metrics = get_text(&client(), gate.url("/.portcullis/metrics")).await;
    let mut missing = Vec::new();
    for line in [
        r#"portcullis_saml_verifications_refused_total{budget="client"} 36"#,
        r#"portcullis_saml_verifications_refused_total{budget="transaction"} 18"#,
    ] {
        if !metrics.lines().any(|l| l == line) {
            missing.push(line);
        }
    }
    assert!(missing.is_empty(), "{missing:?} not in:\n{metrics}");
    assert!(!metrics.contains(r#"budget="global""#), "{metrics}");
}

/// A SAML login through SimpleSAMLphp with `assertion.enabled`: the
/// upstream's `X-Portcullis-Assertion` is verified by PyJWT (the shipped
/// example, examples/verify-assertion) against `/.portcullis/jwks.json`,
/// with the claims the SAML answer carried.
#[tokio::test]
async fn saml_login_carries_an_assertion_pyjwt_verifies() {
    let entity = "http://app.test/sp-assertion-jwt";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site
        .gate(entity)
        .top("assertion:\n  enabled: true\n")
        .start();
    let mut b = Browser::default();
    let c = capture(&mut b, &gate, "alice", "/dash").await;
    // The subject as the IdP sent it, read from its answer, not from the gate.
    let name_id = {
        let start = c.xml.find("NameID").unwrap();
        let rest = &c.xml[start..];
        let open = rest.find('>').unwrap() + 1;
        let close = rest.find("</").unwrap();
        rest[open..close].to_string()
    };
    let echo = finish(&mut b, &gate, &c).await;
    let token = header(&echo, "x-portcullis-assertion").to_string();
    assert!(!token.is_empty(), "no assertion upstream: {echo}");

    let script = "import sys, json, jwt\nsys.path.insert(0, 'examples/verify-assertion')\nimport verify\n\
                  c = jwt.PyJWKClient(sys.argv[1])\n\
                  print(json.dumps(verify.verify(c, sys.stdin.read().strip(), sys.argv[2], sys.argv[3])))\n";
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            script,
            &gate.url("/.portcullis/jwks.json"),
            "http://app.test",
            "app.test",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with python3-jwt (scripts/test.sh installs it)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), token.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "PyJWT refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["idp"], "saml");
    assert_eq!(claims["iss"], "http://app.test");
    assert_eq!(claims["aud"], "app.test");
    assert_eq!(claims["sub"], name_id.as_str());
    assert_eq!(claims["user"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["groups"], json!(["admins", "staff"]));
    let iat = claims["iat"].as_u64().unwrap();
    assert!(claims["auth_time"].as_u64().unwrap() <= iat);
    assert_eq!(claims["exp"].as_u64().unwrap() - iat, 120);
}

// --- SOAP back-channel logout ----------------------------------------------

/// A LogoutRequest in a SOAP envelope, with an enveloped-signature
/// template (exclusive c14n, RSA-SHA256) for `xmlsec1 --sign` to fill in.
fn soap_logout_xml(
    id: &str,
    issue_instant: chrono::DateTime<chrono::Utc>,
    issuer: &str,
    name_id: &str,
    format: &str,
    session_index: Option<&str>,
) -> String {
    let index = session_index
        .map(|i| format!("<samlp:SessionIndex>{i}</samlp:SessionIndex>"))
        .unwrap_or_default();
    format!(
        r##"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{}" Destination="http://app.test/.portcullis/saml/slo"><saml:Issuer>{issuer}</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{RSA_SHA256}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature><saml:NameID SPNameQualifier="http://app.test/sp-idpslo" Format="{format}">{name_id}</saml:NameID>{index}</samlp:LogoutRequest></soap:Body></soap:Envelope>"##,
        issue_instant.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// Signs the template in `xml` with the real `xmlsec1` command line tool,
/// as an IdP's SAML library would.
fn xmlsec1_sign(xml: &str, key: &Path, cert: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xml");
    let output = dir.path().join("out.xml");
    std::fs::write(&input, xml).unwrap();
    let out = Command::new("xmlsec1")
        .arg("--sign")
        .arg("--privkey-pem")
        .arg(format!("{},{}", key.display(), cert.display()))
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest",
            "--output",
        ])
        .arg(&output)
        .arg(&input)
        .output()
        .expect("xmlsec1 runs (Debian package xmlsec1)");
    assert!(
        out.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(output).unwrap()
}

async fn post_soap(gate: &Gate, content_type: &str, body: String) -> (u16, String) {
    let resp = client()
        .post(gate.url("/.portcullis/saml/slo"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The `SessionIndex` the IdP gave this login.
fn session_index_of(response_xml: &str) -> String {
    let at = response_xml
        .find("SessionIndex=\"")
        .expect("a SessionIndex")
        + 14;
    let len = response_xml[at..].find('"').unwrap();
    response_xml[at..at + len].to_string()
}

const SOAP_SUCCESS: &str = r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#;
const SOAP_DENIED: &str = r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode></samlp:Status>"#;

/// The SOAP binding of Single Logout, server to server: a LogoutRequest
/// signed (by the real `xmlsec1`) with the IdP's key revokes the sessions
/// it names, by SessionIndex or by NameID (value and Format as issued),
/// and no other; everything unsigned, signed by another key, from another
/// Issuer, stale, replayed or not SOAP revokes nothing.
#[tokio::test]
async fn soap_logout_revokes_what_a_signed_request_names_and_nothing_else() {
    let entity = "http://app.test/sp-idpslo";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site
        .gate(entity)
        // Every verification here comes from 127.0.0.1: the IdP's
        // logouts share the ACS verification budget (docs/saml.md).
        .saml("  acs_verify_limit:\n    per_client_burst: 100\n")
        .start();
    let idp = &site.idp;
    let issuer = idp.metadata_url();
    let stranger_dir = tempfile::tempdir().unwrap();
    let (stranger_key, stranger_cert) = new_pair(stranger_dir.path(), "stranger");
    let now = chrono::Utc::now;
    let sign = |xml: &str| xmlsec1_sign(xml, &idp.key, &idp.cert);

    // The SP metadata advertises the SOAP binding at the SLO URL.
    let md = get_text(&client(), &gate.url("/.portcullis/saml/metadata")).await;
    assert!(
        md.contains(r#"Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="http://app.test/.portcullis/saml/slo""#),
        "{md}"
    );

    let mut alice = Browser::default();
    let c = capture(&mut alice, &gate, "alice", "/").await;
    let alice_index = session_index_of(&c.xml);
    finish(&mut alice, &gate, &c).await;
    let mut bob = Browser::default();
    login(&mut bob, &gate, "bob", "/").await;
    assert_eq!(alice.get(&gate.url("/")).await.status(), 200);
    assert_eq!(bob.get(&gate.url("/")).await.status(), 200);

    let alice_req = |id: &str, at, issuer: &str| {
        soap_logout_xml(
            id,
            at,
            issuer,
            "alice@example.com",
            EMAIL_FORMAT,
            Some(&alice_index),
        )
    };
    let refused: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "unsigned",
            "text/xml",
            alice_req("_u1", now(), &issuer),
            200,
            "saml soap logout: the LogoutRequest carries no XML signature that verifies with the IdP's metadata keys (unsigned, altered, signed by another key, or with an algorithm other than RSA/ECDSA with SHA-256/384/512)",
        ),
        (
            "signed by a stranger's key",
            "text/xml",
            xmlsec1_sign(
                &alice_req("_u2", now(), &issuer),
                &stranger_key,
                &stranger_cert,
            ),
            200,
            "saml soap logout: the LogoutRequest carries no XML signature that verifies with the IdP's metadata keys (unsigned, altered, signed by another key, or with an algorithm other than RSA/ECDSA with SHA-256/384/512)",
        ),
        (
            "signed, then the NameID changed",
            "text/xml",
            sign(&alice_req("_u3", now(), &issuer))
                .replace(">alice@example.com<", ">bob@example.org<"),
            200,
            "saml soap logout: the LogoutRequest carries no XML signature that verifies with the IdP's metadata keys (unsigned, altered, signed by another key, or with an algorithm other than RSA/ECDSA with SHA-256/384/512)",
        ),
        (
            "Issuer of another IdP",
            "text/xml",
            sign(&alice_req("_u4", now(), "http://other-idp.test/md")),
            200,
            "saml logout: the Issuer is missing or is not the IdP of the metadata",
        ),
        (
            "IssueInstant five minutes old",
            "text/xml",
            sign(&alice_req(
                "_u5",
                now() - chrono::Duration::minutes(5),
                &issuer,
            )),
            200,
            "saml logout: IssueInstant is older than the clock skew allows",
        ),
        (
            "malformed XML",
            "text/xml",
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>"
                .into(),
            400,
            "saml soap logout: the body is not a SOAP envelope with one LogoutRequest (not well-formed XML)",
        ),
        (
            "a bare LogoutRequest, not in a SOAP envelope",
            "text/xml",
            logout_request_xml(
                "_u6",
                now(),
                &issuer,
                "http://app.test/.portcullis/saml/slo",
                "alice@example.com",
                EMAIL_FORMAT,
            ),
            400,
            "saml soap logout: the body is not a SOAP envelope with one LogoutRequest (the root is not one SOAP 1.1 Envelope)",
        ),
        (
            "a signed request sent as a form",
            "application/x-www-form-urlencoded",
            sign(&alice_req("_u7", now(), &issuer)),
            400,
            "saml soap logout: the request is not a SOAP 1.1 message (send Content-Type text/xml)",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, content_type, body, status, why) in refused {
        let before = gate.events("idp_logout").len();
        let revoked_before = gate.events("revoked").len();
        let (got, answer) = post_soap(&gate, content_type, body).await;
        if got != status {
            wrong.push(format!("{name}: status {got}: {answer}"));
        }
        let expected_body = if status == 200 {
            SOAP_DENIED
        } else {
            "<soap:Fault><faultcode>soap:Client</faultcode>"
        };
        if !answer.contains(expected_body) {
            wrong.push(format!("{name}: answer {answer}"));
        }
        match gate.events("idp_logout").get(before) {
            Some(e) if e["outcome"] == "refused" && e["reason"] == why => {}
            other => wrong.push(format!("{name}: audit {other:?}, expected {why:?}")),
        }
        if gate.events("revoked").len() != revoked_before {
            wrong.push(format!("{name}: something was revoked"));
        }
        if alice.get(&gate.url("/")).await.status() != 200 {
            wrong.push(format!("{name}: alice's session was ended"));
            let c = capture(&mut alice, &gate, "alice", "/").await;
            finish(&mut alice, &gate, &c).await;
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // By SessionIndex: alice's session ends, bob's is kept.
    let good = sign(&alice_req("_s_good", now(), &issuer));
    let (status, answer) = post_soap(&gate, "text/xml; charset=utf-8", good.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(r#"InResponseTo="_s_good""#) && answer.contains(SOAP_SUCCESS),
        "{answer}"
    );
    assert_eq!(alice.get(&gate.url("/")).await.status(), 302, "alice kept");
    assert_eq!(bob.get(&gate.url("/")).await.status(), 200, "bob ended");
    let r = gate.events("revoked").last().unwrap().clone();
    assert_eq!(
        (
            r["source"].as_str(),
            r["kind"].as_str(),
            r["value"].as_str()
        ),
        (
            Some("saml_logout"),
            Some("idp_session"),
            Some(alice_index.as_str())
        ),
        "{r}"
    );

    // The same signed request again: a replay, nothing revoked.
    let c = capture(&mut alice, &gate, "alice", "/").await;
    finish(&mut alice, &gate, &c).await;
    let revoked_before = gate.events("revoked").len();
    let (status, answer) = post_soap(&gate, "text/xml", good).await;
    assert_eq!(
        (status, answer.contains(SOAP_DENIED)),
        (200, true),
        "{answer}"
    );
    assert_eq!(
        gate.events("idp_logout").last().unwrap()["reason"],
        "saml logout: this LogoutRequest ID was already used (replay)"
    );
    assert_eq!(gate.events("revoked").len(), revoked_before);
    assert_eq!(alice.get(&gate.url("/")).await.status(), 200);

    // By NameID, in another Format than the one alice's session was
    // issued with: it names nobody here.
    let persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
    let other_format = sign(&soap_logout_xml(
        "_n_other",
        now(),
        &issuer,
        "alice@example.com",
        persistent,
        None,
    ));
    let (status, answer) = post_soap(&gate, "text/xml", other_format).await;
    assert_eq!(
        (status, answer.contains(SOAP_SUCCESS)),
        (200, true),
        "{answer}"
    );
    assert_eq!(
        alice.get(&gate.url("/")).await.status(),
        200,
        "another Format"
    );

    // By NameID as issued (value and Format): alice's session ends, bob's
    // is kept.
    let by_name = sign(&soap_logout_xml(
        "_n_good",
        now(),
        &issuer,
        "alice@example.com",
        EMAIL_FORMAT,
        None,
    ));
    let (status, answer) = post_soap(&gate, "text/xml", by_name).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(r#"InResponseTo="_n_good""#) && answer.contains(SOAP_SUCCESS),
        "{answer}"
    );
    assert_eq!(alice.get(&gate.url("/")).await.status(), 302, "alice kept");
    assert_eq!(bob.get(&gate.url("/")).await.status(), 200, "bob ended");
    let r = gate.events("revoked").last().unwrap().clone();
    assert_eq!(
        (r["kind"].as_str(), r["value"].as_str()),
        (Some("name_id"), Some("alice@example.com")),
        "{r}"
    );
    // Never a payload in the log.
    assert!(!gate.log().contains("LogoutRequest xmlns"));
}

/// `/admin/` asks for a sign-in at most 2 s old, with 1 s of clock skew.
const FRESH_ADMIN: &str = "access:\n  rules:\n    - description: Admin console\n      paths: [{prefix: /admin/}]\n      max_auth_age: 2s\n";
/// Longer than the age and the skew together, whole seconds included.
const AGED: Duration = Duration::from_millis(4500);

/// A gate whose `/admin/` wants a fresh sign-in, 1 s of clock skew, and
/// `saml_extra` under `saml:`.
fn fresh_admin_gate(site: &SamlSite, entity: &str, saml_extra: &str) -> Gate {
    site.gate(entity)
        .saml(&format!("  clock_skew: 1s\n{saml_extra}"))
        .top(FRESH_ADMIN)
        .start()
}

#[tokio::test]
async fn max_auth_age_sends_an_old_session_back_with_force_authn() {
    let entity = "http://app.test/sp-fresh";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = fresh_admin_gate(&site, entity, "");
    let mut b = Browser::default();
    // A login for the rest of the app does not force a sign-in.
    let to_idp = start_login(&mut b, &gate, "/").await;
    assert!(
        !message_of(&to_idp, "SAMLRequest").contains("ForceAuthn"),
        "{to_idp}"
    );
    let form = at_idp(&mut b, to_idp, "alice").await;
    let c = Captured::from_form(&form);
    finish(&mut b, &gate, &c).await;
    let resp = b.get(&gate.url("/admin/x")).await;
    assert_eq!(resp.status(), 200, "just signed in");

    std::thread::sleep(AGED);
    let resp = b.get(&gate.url("/reports")).await;
    assert_eq!(resp.status(), 200, "the rest of the app asks nothing");
    let to_idp = start_login(&mut b, &gate, "/admin/x").await;
    let request = message_of(&to_idp, "SAMLRequest");
    assert!(request.contains(r#"ForceAuthn="true""#), "{request}");
    let required = gate.events("reauth_required");
    assert_eq!(required.len(), 1, "{required:?}");
    assert_eq!(required[0]["max_auth_age_secs"], 2);
    // SimpleSAMLphp has a session for alice, and asks for the password
    // again because of ForceAuthn.
    let (_, page) = b.follow(to_idp.clone()).await;
    assert!(
        forms(&page).iter().any(|f| f.get("password").is_some()),
        "login form expected:\n{page}"
    );
    let c = Captured::from_form(&at_idp(&mut b, to_idp, "alice").await);
    let echo = finish(&mut b, &gate, &c).await;
    assert_eq!(echo["uri"], "/admin/x");
    assert_eq!(header(&echo, "x-forwarded-user"), "alice");
}

/// An answer from the IdP that repeats an old sign-in (here an
/// IdP-initiated login from SimpleSAMLphp's existing session, which asks
/// nothing) cannot open a page whose rule wants a fresh one; the same
/// answer for another page is accepted (the positive control).
#[tokio::test]
async fn an_idp_answer_with_an_old_sign_in_does_not_satisfy_the_rule() {
    let entity = "http://app.test/sp-stale";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = fresh_admin_gate(&site, entity, "  allow_idp_initiated: true\n");
    let mut b = Browser::default();
    login(&mut b, &gate, "alice", "/").await;
    std::thread::sleep(AGED);
    let unsolicited = |relay: &str| {
        format!(
            "{}?spentityid={}&RelayState={}",
            site.idp.sso_url(),
            url::form_urlencoded::byte_serialize(entity.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(relay.as_bytes()).collect::<String>()
        )
    };
    let form = at_idp(&mut b, unsolicited("/admin/x"), "alice").await;
    let c = Captured::from_form(&form);
    let resp = post_acs(&mut b, &gate, &c.xml, &c.relay).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .all(|v| !v.to_str().unwrap().contains("portcullis_session=")),
        "no session minted"
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("A recent sign-in is needed here"), "{body}");
    assert_eq!(
        failures(&gate),
        ["the IdP reported a sign-in older than max_auth_age (2 s)"]
    );
    assert_eq!(
        operator_fix_of(&gate).as_deref(),
        Some(
            "the IdP must honour prompt=login/max_age (OIDC) or ForceAuthn (SAML) for this application"
        )
    );
    // The same kind of answer for a page without the rule logs in.
    let form = at_idp(&mut b, unsolicited("/reports"), "alice").await;
    let c = Captured::from_form(&form);
    let echo = finish(&mut b, &gate, &c).await;
    assert_eq!(echo["uri"], "/reports");
}

/// `session.groups` on a SAML login: groups neither listed nor named by an
/// access rule are left out of the session, and counted.
#[tokio::test]
async fn session_groups_keep_only_listed_and_rule_groups() {
    let entity = "http://app.test/sp-groups";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let yaml = site
        .gate(entity)
        .top("access:\n  allowed_groups: [admins]\n")
        .yaml()
        .replace("session:\n", "session:\n  groups: ['app-*']\n");
    let gate = Gate::start(&yaml);
    let mut b = Browser::default();
    let echo = login(&mut b, &gate, "alice", "/").await;
    // alice is in admins and staff: admins is the rule's, staff is dropped.
    assert_eq!(header(&echo, "x-forwarded-groups"), "admins");
    let ok = gate.events("login_succeeded");
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0]["groups"], 1);
    assert_eq!(ok[0]["groups_dropped"], 1);
}

/// Roles from SAML logins: groups first (alice is in admins), then the
/// IdP kind for everyone else (bob: `member` is only for OIDC logins, so
/// `partner`). The role travels in the session, the header and the signed
/// identity assertion; a client's role header never reaches the app.
#[tokio::test]
async fn roles_from_saml_logins_reach_the_header_and_the_assertion() {
    let entity = "http://app.test/sp-roles";
    let site = SamlSite::start(&[(entity, json!({}))]).await;
    let gate = site
        .gate(entity)
        .top("roles:\n  - name: admin\n    groups: [admins]\n  - name: member\n    idps: [oidc]\n  - name: partner\n    idps: [saml]\nassertion:\n  enabled: true\n")
        .start();
    for (user, role) in [("alice", "admin"), ("bob", "partner")] {
        let mut b = Browser::default();
        let echo = login(&mut b, &gate, user, "/dash").await;
        assert_eq!(header(&echo, "x-forwarded-role"), role, "{user}: {echo}");
        let token = header(&echo, "x-portcullis-assertion");
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap_or_default())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (claims["user"].as_str(), claims["role"].as_str()),
            (Some(user), Some(role)),
            "{claims}"
        );
        let url = gate.url("/dash");
        let spoofed = b
            .http()
            .get(&url)
            .header("cookie", b.cookie_header(&url))
            .header("x-forwarded-role", "admin")
            .send()
            .await
            .unwrap();
        let v: Value = spoofed.json().await.unwrap();
        assert_eq!(header(&v, "x-forwarded-role"), role, "{user}: {v}");
    }
}
