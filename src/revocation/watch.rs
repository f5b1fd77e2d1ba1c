//! How a running instance learns of revocations written by another
//! process (`portcullis revoke`): it looks at the file's inode, size and
//! modification time once per [`INTERVAL`] and reads it again when they
//! changed. A `stat` a second costs nothing, needs no signal permissions
//! and works the same under systemd, in a container and in tests.

use std::sync::Arc;
use std::time::Duration;

use super::Revocations;

pub const INTERVAL: Duration = Duration::from_secs(1);

/// Runs until the process ends.
pub async fn watch(revocations: Arc<Revocations>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let r = revocations.clone();
        let result = tokio::task::spawn_blocking(move || r.reload_if_changed()).await;
        match result {
            Ok(Ok(added)) => {
                if failing {
                    tracing::info!("the revocation list can be read again");
                    failing = false;
                }
                if added > 0 {
                    tracing::info!(
                        added,
                        total = revocations.len(),
                        "revocation list updated from its file"
                    );
                }
            }
            Ok(Err(e)) => {
                // Once per failure, not once a second; the entries in memory
                // keep applying.
                if !failing {
                    tracing::error!(error = %e, "cannot read the revocation list again; the revocations already loaded still apply");
                    failing = true;
                }
            }
            Err(_) => {}
        }
    }
}
