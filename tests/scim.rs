//! SCIM provisioning against the real binary, driven by an existing SCIM
//! client (`scim2-client` from PyPI, through `tests/scim/client.py`) and
//! checked by the `scim2-tester` conformance checker: deactivation (PATCH
//! as Okta sends it, PUT), deletion and leaving a group that an access
//! rule names end exactly that user's sessions; calls without the token
//! get 401 and change nothing; malformed SCIM gets a SCIM error body.
//! The Python venv comes from `scripts/test.sh setup` (`target/scim-venv`,
//! or `PORTCULLIS_SCIM_VENV`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cases::Cases;
use common::{Gate, TestUpstream, api_get, base_yaml, client};
use portcullis::identity::Identity;
use serde_json::{Value, json};

const TOKEN: &str = "scim-token-for-the-tests-3f9a1c";
const SCIM_JSON: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A gate with SCIM on (token named `okta`) and `admins` as the one group
/// that lets people in, with the upstream it is in front of (which stops
/// when dropped).
async fn scim_gate() -> (TestUpstream, Gate) {
    scim_gate_after("access:\n  allowed_groups: [admins]\n").await
}

/// A gate whose config is `before` and then SCIM on (token named `okta`),
/// with its upstream.
async fn scim_gate_after(before: &str) -> (TestUpstream, Gate) {
    let up = TestUpstream::start().await;
    let hash = hex::encode(portcullis::policy::tokens::sha256(TOKEN));
    let gate = Gate::start(&base_yaml(
        &up.url(),
        &format!("{before}scim:\n  tokens:\n    - name: okta\n      sha256: {hash}\n"),
    ));
    (up, gate)
}

/// Someone who signed in with `user_name` as the user header's value,
/// which is what SCIM's `userName` must match.
fn person(user_name: &str) -> Identity {
    Identity {
        subject: format!("{user_name}-sub"),
        user: user_name.into(),
        email: Some(user_name.into()),
        groups: vec!["admins".into()],
        ..Default::default()
    }
}

fn base(gate: &Gate) -> String {
    gate.url("/.portcullis/scim/v2")
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("PORTCULLIS_SCIM_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/scim-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/test.sh setup` (it installs scim2-client and scim2-tester)",
        python.display()
    );
    python
}

/// Runs `tests/scim/client.py` (scim2-client) against the gate; its JSON.
fn scim_client(gate: &Gate, args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scim/client.py");
    let out = Command::new(venv_python())
        .arg(script)
        .arg(base(gate))
        .arg(TOKEN)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client.py {args:?} failed:\n{}\ngate log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gate.log()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn status(gate: &Gate, cookie: &str) -> u16 {
    api_get(&client(), gate.url("/app/page"), cookie)
        .await
        .status()
        .as_u16()
}

/// A raw SCIM call, as an IdP's provisioning makes it: status, content
/// type and body (`Null` when empty).
/// Creates the user `user_name` with the SCIM client, as an IdP
/// provisions one; returns its id.
fn create_user(gate: &Gate, user_name: &str) -> String {
    scim_client(gate, &["create-user", user_name])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn call(
    gate: &Gate,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, String, Value) {
    let mut req = client().request(method.parse().unwrap(), format!("{}{path}", base(gate)));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.header("content-type", SCIM_JSON).body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, ct, body)
}

/// A provider's `POST /Users` creating the user `body` describes, with `auth`.
async fn post_user(gate: &Gate, auth: &str, body: &str) -> (u16, String, Value) {
    call(gate, "POST", "/Users", Some(auth), Some(body)).await
}

/// A provider's `PATCH /Users/{id}` with the operations in `body`, with `auth`.
async fn patch_user(gate: &Gate, auth: &str, id: &str, body: &str) -> (u16, String, Value) {
    call(
        gate,
        "PATCH",
        &format!("/Users/{id}"),
        Some(auth),
        Some(body),
    )
    .await
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn revoked(gate: &Gate) -> Vec<(String, String, String, String)> {
    gate.events("revoked")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("source"), s("kind"), s("value"), s("by"))
        })
        .collect()
}

fn scim_revocation(user: &str) -> (String, String, String, String) {
    (
        "scim".into(),
        "user".into(),
        user.into(),
        "scim:okta".into(),
    )
}

#[tokio::test]
async fn deactivation_and_deletion_end_that_users_sessions_and_nobody_elses() {
    let (_up, gate) = scim_gate().await;
    let alice = gate.session_cookie(&person("alice@example.com"));
    let bob = gate.session_cookie(&person("bob@example.com"));
    let carol = gate.session_cookie(&person("carol@example.com"));
    for c in [&alice, &bob, &carol] {
        assert_eq!(status(&gate, c).await, 200);
    }

    let a = scim_client(&gate, &["create-user", "alice@example.com"]);
    assert_eq!(a["userName"], "alice@example.com");
    assert_eq!(a["active"], true);
    let alice_id = a["id"].as_str().unwrap().to_string();
    let bob_id = create_user(&gate, "bob@example.com");
    let carol_id = create_user(&gate, "carol@example.com");
    // Okta and Entra ID look a user up before they change it; userName is
    // compared without regard to case.
    assert_eq!(
        scim_client(&gate, &["find-user", "ALICE@example.com"]),
        json!({"totalResults": 1, "ids": [alice_id]})
    );
    assert_eq!(
        scim_client(&gate, &["find-user", "nobody@example.com"]),
        json!({"totalResults": 0, "ids": []})
    );

    // A change that is not a deactivation ends nothing.
    let renamed = scim_client(&gate, &["rename-display", &alice_id, "Alice A."]);
    assert_eq!(renamed["displayName"], "Alice A.");
    assert_eq!(status(&gate, &alice).await, 200);
    assert!(revoked(&gate).is_empty(), "{:?}", revoked(&gate));

    // PATCH `replace` with `{"active": false}`, Okta's deactivation.
    let off = scim_client(&gate, &["deactivate", &alice_id]);
    assert_eq!(off["active"], false);
    assert_eq!(status(&gate, &alice).await, 401, "alice is cut off at once");
    assert_eq!(status(&gate, &bob).await, 200, "bob is not alice");
    assert_eq!(status(&gate, &carol).await, 200, "nor is carol");
    assert_eq!(revoked(&gate), [scim_revocation("alice@example.com")]);
    // Deactivating again changes nothing more.
    scim_client(&gate, &["deactivate", &alice_id]);
    assert_eq!(revoked(&gate).len(), 1);

    // PUT with `active: false`.
    let put = scim_client(&gate, &["replace-inactive", &bob_id]);
    assert_eq!(put["active"], false);
    assert_eq!(status(&gate, &bob).await, 401, "bob, deactivated by PUT");
    assert_eq!(status(&gate, &carol).await, 200);

    // DELETE.
    assert_eq!(
        scim_client(&gate, &["delete", "User", &carol_id]),
        json!({"deleted": carol_id})
    );
    assert_eq!(status(&gate, &carol).await, 401, "carol, deleted");
    let (s, _, body) = call(
        &gate,
        "GET",
        &format!("/Users/{carol_id}"),
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(s, 404, "{body}");
    assert_eq!(
        revoked(&gate),
        [
            scim_revocation("alice@example.com"),
            scim_revocation("bob@example.com"),
            scim_revocation("carol@example.com"),
        ]
    );

    // Not a key change: someone signing in now gets in.
    let dave = gate.session_cookie(&person("dave@example.com"));
    assert_eq!(status(&gate, &dave).await, 200);
    // A restart forgets neither the revocations nor the users.
    let mut gate = gate;
    gate.restart();
    assert_eq!(status(&gate, &alice).await, 401, "after a restart");
    assert_eq!(
        scim_client(&gate, &["find-user", "bob@example.com"]),
        json!({"totalResults": 1, "ids": [bob_id]})
    );
}

#[tokio::test]
async fn leaving_a_group_that_an_access_rule_names_ends_the_members_session() {
    let (_up, gate) = scim_gate().await;
    let alice = gate.session_cookie(&person("alice@example.com"));
    let bob = gate.session_cookie(&person("bob@example.com"));
    let alice_id = create_user(&gate, "alice@example.com");
    let bob_id = create_user(&gate, "bob@example.com");
    let admins = scim_client(&gate, &["create-group", "admins", &alice_id, &bob_id]);
    assert_eq!(admins["members"].as_array().unwrap().len(), 2, "{admins}");
    let admins_id = admins["id"].as_str().unwrap().to_string();
    let staff = scim_client(&gate, &["create-group", "staff", &alice_id]);
    let staff_id = staff["id"].as_str().unwrap().to_string();

    // `staff` is named by no access rule: leaving it changes nothing.
    scim_client(&gate, &["remove-member", &staff_id, &alice_id]);
    assert_eq!(status(&gate, &alice).await, 200);
    assert!(revoked(&gate).is_empty());

    // Okta's `remove` with `members[value eq "ID"]` from `admins`.
    let after = scim_client(&gate, &["remove-member", &admins_id, &alice_id]);
    assert_eq!(after["members"][0]["value"], bob_id.as_str(), "{after}");
    assert_eq!(status(&gate, &alice).await, 401, "alice left admins");
    assert_eq!(status(&gate, &bob).await, 200, "bob is still in admins");
    assert_eq!(revoked(&gate), [scim_revocation("alice@example.com")]);

    // Entra ID's spelling: `Remove` with the members as value.
    let (s, _, body) = call(
        &gate,
        "PATCH",
        &format!("/Groups/{admins_id}"),
        Some(&bearer()),
        Some(&format!(
            r#"{{"schemas":["{PATCH_SCHEMA}"],"Operations":[{{"op":"Remove","path":"members","value":[{{"value":"{bob_id}"}}]}}]}}"#
        )),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(status(&gate, &bob).await, 401, "bob left admins too");
}

/// Roles are chosen at login, so a membership change in a group a role
/// names (joining as well as leaving) ends the member's session: they
/// sign in again and get their new role. A group named only by a per-path
/// access rule ends the sessions of those who leave it, like the default
/// rule's groups.
#[tokio::test]
async fn a_group_change_that_alters_a_role_or_a_path_rule_ends_the_members_session() {
    let (_up, gate) = scim_gate_after(
        "roles:\n  - name: editor\n    groups: [editors]\ndefault_role: viewer\naccess:\n  rules:\n    - description: Audit trail\n      paths: [{prefix: /audit/}]\n      allowed_groups: [auditors]\n",
    )
    .await;
    let id_of = |v: Value| v["id"].as_str().unwrap().to_string();
    let alice = gate.session_cookie(&person("alice@example.com"));
    let bob = gate.session_cookie(&person("bob@example.com"));
    let carol = gate.session_cookie(&person("carol@example.com"));
    let alice_id = id_of(scim_client(&gate, &["create-user", "alice@example.com"]));
    let bob_id = id_of(scim_client(&gate, &["create-user", "bob@example.com"]));
    let carol_id = id_of(scim_client(&gate, &["create-user", "carol@example.com"]));
    let staff = id_of(scim_client(&gate, &["create-group", "staff", &alice_id]));
    let auditors = id_of(scim_client(&gate, &["create-group", "auditors", &carol_id]));
    assert!(revoked(&gate).is_empty(), "{:?}", revoked(&gate));

    // A group no role and no rule names: nothing ends.
    scim_client(&gate, &["add-member", &staff, &bob_id]);
    assert!(revoked(&gate).is_empty(), "{:?}", revoked(&gate));

    // bob joins `editors`: his session (role viewer) ends.
    let editors = id_of(scim_client(&gate, &["create-group", "editors", &bob_id]));
    assert_eq!(status(&gate, &bob).await, 401, "bob's role changed");
    assert_eq!(status(&gate, &alice).await, 200);
    // alice joins too, through a PATCH add.
    scim_client(&gate, &["add-member", &editors, &alice_id]);
    assert_eq!(status(&gate, &alice).await, 401, "alice's role changed");
    assert_eq!(
        revoked(&gate),
        [
            scim_revocation("bob@example.com"),
            scim_revocation("alice@example.com")
        ]
    );

    // carol leaves the group of a per-path rule.
    assert_eq!(status(&gate, &carol).await, 200);
    scim_client(&gate, &["remove-member", &auditors, &carol_id]);
    assert_eq!(status(&gate, &carol).await, 401, "carol left auditors");
}

#[tokio::test]
async fn entra_ids_calls_are_understood() {
    let (_up, gate) = scim_gate().await;
    let erin = gate.session_cookie(&person("erin@contoso.example"));
    let auth = bearer();
    let erin_json = format!(
        r#"{{"schemas":["{USER_SCHEMA}","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0a1b-entra","userName":"erin@contoso.example","active":true,"displayName":"Erin","emails":[{{"primary":true,"type":"work","value":"erin@contoso.example"}}],"name":{{"givenName":"Erin"}},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{{"department":"R&D"}}}}"#
    );
    let (s, ct, created) = post_user(&gate, &auth, &erin_json).await;
    assert_eq!((s, ct.as_str()), (201, SCIM_JSON), "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["externalId"], "0a1b-entra");
    assert!(
        created.get("emails").is_none(),
        "Portcullis keeps no emails"
    );

    // Entra's lookup by its own id, with the query string encoded.
    let (s, _, found) = call(
        &gate,
        "GET",
        "/Users?filter=externalId+eq+%220a1b-entra%22",
        Some(&auth),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());

    // Entra's deactivation: `Replace`, a path, and the boolean as a string.
    let deactivate = format!(
        r#"{{"schemas":["{PATCH_SCHEMA}"],"Operations":[{{"op":"Replace","path":"active","value":"False"}}]}}"#
    );
    let (s, _, patched) = patch_user(&gate, &auth, &id, &deactivate).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["active"], false);
    assert_eq!(status(&gate, &erin).await, 401);
    assert_eq!(revoked(&gate), [scim_revocation("erin@contoso.example")]);
}

#[tokio::test]
async fn calls_without_the_token_get_401_and_change_nothing() {
    let (_up, gate) = scim_gate().await;
    let alice = gate.session_cookie(&person("alice@example.com"));
    let alice_id = create_user(&gate, "alice@example.com");
    let users_before = call(&gate, "GET", "/Users", Some(&bearer()), None).await.2;

    let deactivate = format!(
        r#"{{"schemas":["{PATCH_SCHEMA}"],"Operations":[{{"op":"replace","value":{{"active":false}}}}]}}"#
    );
    let new_user = format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":"mallory@example.com"}}"#);
    let user_path = format!("/Users/{alice_id}");
    let calls: [(&str, &str, Option<&str>); 5] = [
        ("GET", "/Users", None),
        ("POST", "/Users", Some(&new_user)),
        ("PATCH", &user_path, Some(&deactivate)),
        ("DELETE", &user_path, None),
        ("GET", "/ServiceProviderConfig", None),
    ];
    let wrong = [
        None,
        Some("Bearer wrong-token".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        Some("Bearer ".to_string()),
    ];
    let want = json!({
        "schemas": [ERROR_SCHEMA],
        "status": "401",
        "detail": "a SCIM call needs `Authorization: Bearer TOKEN` with a token whose hash is in `scim.tokens`",
    });
    let mut cases = Cases::new();
    let mut n = 0;
    for (method, path, body) in calls {
        for auth in &wrong {
            n += 1;
            let got = call(&gate, method, path, auth.as_deref(), body).await;
            cases.eq(
                format!("{method} {path} with {auth:?}"),
                got,
                (401, SCIM_JSON.to_string(), want.clone()),
            );
        }
    }
    cases.finish();

    assert_eq!(
        status(&gate, &alice).await,
        200,
        "alice was not deactivated"
    );
    assert!(revoked(&gate).is_empty(), "{:?}", revoked(&gate));
    assert_eq!(
        call(&gate, "GET", "/Users", Some(&bearer()), None).await.2,
        users_before,
        "no user was added, changed or deleted"
    );
    let refused = gate.events("scim_refused");
    assert_eq!(refused.len(), n, "each refusal is audited");
    assert!(!gate.log().contains(TOKEN), "the token is never logged");
}

#[tokio::test]
async fn malformed_scim_gets_400_with_a_scim_error_body() {
    let (_up, gate) = scim_gate().await;
    let alice = gate.session_cookie(&person("alice@example.com"));
    let alice_id = create_user(&gate, "alice@example.com");
    let auth = bearer();
    let user_path = format!("/Users/{alice_id}");
    let err = |status: &str, scim_type: &str, detail: &str| json!({"schemas": [ERROR_SCHEMA], "status": status, "scimType": scim_type, "detail": detail});
    let cases_table: Vec<(&str, &str, String, Value)> = vec![
        (
            "POST",
            "/Users",
            "{not json".to_string(),
            err(
                "400",
                "invalidSyntax",
                "the request body is not JSON (key must be a string at line 1 column 2); send a SCIM resource or PatchOp message",
            ),
        ),
        (
            "POST",
            "/Users",
            r#"{"userName":"x@example.com"}"#.to_string(),
            err(
                "400",
                "invalidSyntax",
                &format!("`schemas` must list `{USER_SCHEMA}`"),
            ),
        ),
        (
            "POST",
            "/Users",
            format!(r#"{{"schemas":["{USER_SCHEMA}"],"displayName":"X"}}"#),
            err(
                "400",
                "invalidValue",
                "`userName` is required: the name users sign in with",
            ),
        ),
        (
            "POST",
            "/Users",
            format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":"alice@example.com"}}"#),
            err(
                "409",
                "uniqueness",
                &format!(
                    "a user with userName `alice@example.com` exists already (id `{alice_id}`); find it with GET /Users?filter=userName eq \"alice@example.com\""
                ),
            ),
        ),
        (
            "PATCH",
            &user_path,
            "[1, 2".to_string(),
            err(
                "400",
                "invalidSyntax",
                "the request body is not JSON (EOF while parsing a list at line 1 column 5); send a SCIM resource or PatchOp message",
            ),
        ),
        (
            "PATCH",
            &user_path,
            format!(
                r#"{{"schemas":["{PATCH_SCHEMA}"],"Operations":[{{"op":"replace","path":"active","value":7}}]}}"#
            ),
            err("400", "invalidValue", "`active` must be true or false"),
        ),
        (
            "PATCH",
            &user_path,
            r#"{"Operations":[{"op":"replace","value":{"active":false}}]}"#.to_string(),
            err(
                "400",
                "invalidSyntax",
                &format!("a PATCH body is a PatchOp message: `schemas` must list `{PATCH_SCHEMA}`"),
            ),
        ),
    ];
    let mut cases = Cases::new();
    for (method, path, body, want) in cases_table {
        let got = call(&gate, method, path, Some(&auth), Some(&body)).await;
        let status = want["status"].as_str().unwrap().parse::<u16>().unwrap();
        cases.eq(
            format!("{method} {path} {body}"),
            got,
            (status, SCIM_JSON.to_string(), want),
        );
    }
    let got = call(
        &gate,
        "GET",
        "/Users?filter=userName%20eq",
        Some(&auth),
        None,
    )
    .await;
    cases.eq(
        "a filter that does not parse",
        (got.0, got.2["scimType"].clone()),
        (400, json!("invalidFilter")),
    );
    let got = call(
        &gate,
        "GET",
        "/Users?filter=emails.value%20eq%20%22a%22",
        Some(&auth),
        None,
    )
    .await;
    cases.eq(
        "a filter on an attribute Portcullis does not keep",
        got.2["detail"].clone(),
        json!("Portcullis cannot filter on `emails.value`: it keeps only `id`, `userName`, `externalId`, `displayName` and `active`"),
    );
    cases.finish();

    assert_eq!(status(&gate, &alice).await, 200, "nothing was revoked");
    assert!(revoked(&gate).is_empty());
}

#[tokio::test]
async fn the_scim2_tester_conformance_checks_pass() {
    let (_up, gate) = scim_gate().await;
    let results = scim_client(&gate, &["conformance"]);
    let mut cases = Cases::new();
    for r in results.as_array().unwrap() {
        let title = r["title"].as_str().unwrap();
        // Searching several resource types at once (POST /.search) is not
        // offered: 501, which the checker counts as skipped.
        let want = if title == "search_with_attributes" {
            "SKIPPED"
        } else {
            "SUCCESS"
        };
        cases.check(title, r["status"] == want, || format!("{r}"));
    }
    assert!(results.as_array().unwrap().len() > 40, "{results}");
    cases.finish();
}

#[tokio::test]
async fn scim_is_off_unless_configured() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), ""));
    let resp = client()
        .get(format!("{}/Users", base(&gate)))
        .header("authorization", bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("<title>Page not found</title>")
    );
}

/// Okta and Entra ID send `userName` as the directory spells it; the
/// session's user header may be the same email in lower case. The user
/// revocation compares without case (docs/scim.md).
#[tokio::test]
async fn a_user_name_in_another_case_ends_that_users_sessions() {
    let (_up, gate) = scim_gate().await;
    let alice = gate.session_cookie(&person("alice@example.com"));
    let bob = gate.session_cookie(&person("bob@example.com"));
    let auth = bearer();
    let alice_json =
        format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":"Alice@Example.com","active":true}}"#);
    let (s, _, created) = post_user(&gate, &auth, &alice_json).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(status(&gate, &alice).await, 200);
    let deactivate = format!(
        r#"{{"schemas":["{PATCH_SCHEMA}"],"Operations":[{{"op":"replace","value":{{"active":false}}}}]}}"#
    );
    let (s, _, patched) = patch_user(&gate, &auth, &id, &deactivate).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(revoked(&gate), [scim_revocation("Alice@Example.com")]);
    assert_eq!(status(&gate, &alice).await, 401, "alice's session kept");
    assert_eq!(status(&gate, &bob).await, 200, "bob's session ended");
}
