//! Error pages that diagnose: a login that fails for a reason only the
//! operator can fix shows the user one sentence ("sign-in is
//! misconfigured") and the request id, never the protocol error; the
//! audit line names the fix. Driven through the real oidc-provider.

mod common;

use common::oidc::{Browser, CLIENT_ID, OidcIdp};
use common::{Gate, TestUpstream, base_yaml, free_port};

#[tokio::test]
async fn a_wrong_client_secret_shows_the_misconfigured_page_and_logs_the_fix() {
    let up = TestUpstream::start().await;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let yaml = base_yaml(
        &up.url(),
        &format!(
            "oidc:\n  issuer: {}\n  client_id: {CLIENT_ID}\n  client_secret: not-the-registered-secret\n",
            idp.issuer
        ),
    )
    .replace("domain: app.test", &format!("domain: 127.0.0.1:{port}"))
    .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"));
    let gate = Gate::start(&yaml);
    let b = Browser::new();
    let (form, _) = b.follow(&format!("{origin}/")).await;
    assert!(form.body.contains("login-form"), "{}", form.body);
    let resp = b.submit_login(&form, "alice", "alice-pw").await;
    let (page, _) = b.follow_response(resp, &form.url).await;

    page.assert_shows(500, "Sign-in to this application is misconfigured");
    let rid = page.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(page.body.contains(&rid), "the page shows the request id");
    for raw in ["invalid_client", "client_secret", "token endpoint"] {
        assert!(
            !page.body.contains(raw),
            "the user sees `{raw}`: {}",
            page.body
        );
    }
    let failed: Vec<_> = gate
        .events("login_failed")
        .into_iter()
        .filter(|e| e["request_id"] == rid.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", gate.audit_events());
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("invalid_client")
            && reason.contains("operator fix:")
            && reason.contains("client_secret_file"),
        "{reason}"
    );
    drop(gate);
    drop(idp);
}
