//! Prints a valid session cookie (`name=value`) for the load benchmark,
//! minted with Portcullis' own session code from the configuration's key
//! file, as a login would.
//!
//! Usage: bench_cookie CONFIG.yaml

use std::sync::Arc;

use portcullis::identity::{Identity, IdpKind};
use portcullis::session::{KeyRing, Sessions};

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench_cookie CONFIG.yaml"))?;
    let config = portcullis::config::load(Some(std::path::Path::new(&path)))?;
    let ring = KeyRing::load(&config.session.key_file)?;
    let sessions = Sessions::new(&config, Arc::new(ring));
    let identity = Identity {
        subject: "248289761001".into(),
        user: "alice".into(),
        email: Some("alice@example.com".into()),
        name: Some("Alice Example".into()),
        preferred_username: Some("alice".into()),
        groups: vec!["staff".into(), "admins".into(), "grafana-editors".into()],
        ..Default::default()
    };
    let set = sessions.mint(&identity, IdpKind::Oidc, &[])?;
    let cookie = set
        .first()
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no session cookie minted"))?;
    println!("{cookie}");
    Ok(())
}
