//! Open files: each client connection can need two (itself and an upstream
//! connection), so `connections.max` must fit under `RLIMIT_NOFILE` with
//! room for the listener, the IdP client, logs and key files. The soft
//! limit is raised to the hard one (systemd's default soft limit is 1024;
//! the shipped unit sets `LimitNOFILE=65536`); if that is still too little,
//! fewer connections are served at once, with a warning, rather than
//! failing `accept` and upstream connects under load.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Files kept for everything that is not a client or upstream connection.
pub const RESERVED_FILES: u64 = 128;

/// The number of connections to serve at once: `configured`, or fewer if
/// the open-files limit cannot be raised far enough.
pub fn fit_to_fd_limit(configured: usize) -> usize {
    let limit = raise_soft_limit();
    let fitted = fit(configured, limit);
    if fitted < configured {
        tracing::warn!(
            configured,
            serving = fitted,
            open_files_limit = limit,
            "connections.max does not fit the open-files limit (each connection can need two files, client and upstream); serving fewer at once. Raise LimitNOFILE in the systemd unit or lower connections.max"
        );
    }
    fitted
}

/// The soft limit after trying to raise it to the hard one; `u64::MAX`
/// when unlimited.
fn raise_soft_limit() -> u64 {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    let hard = now.maximum.unwrap_or(u64::MAX);
    if soft >= hard {
        return soft;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: now.maximum,
            maximum: now.maximum,
        },
    ) {
        Ok(()) => hard,
        Err(e) => {
            tracing::debug!(error = %e, "cannot raise the open-files limit");
            soft
        }
    }
}

/// Files each serving thread keeps open besides its connections: its
/// runtime's epoll, waker and signal pipe, and its copy of the listener.
pub const FILES_PER_THREAD: u64 = 4;

fn fit(configured: usize, open_files: u64) -> usize {
    let threads = u64::try_from(crate::worker::count()).unwrap_or(u64::MAX);
    let reserved = RESERVED_FILES.saturating_add(threads.saturating_mul(FILES_PER_THREAD));
    let room = open_files.saturating_sub(reserved) / 2;
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_under_the_limit() {
        assert_eq!(fit(4096, 65536), 4096);
        let reserved = 128 + 4 * crate::worker::count();
        assert_eq!(fit(4096, 1024), (1024 - reserved) / 2);
        assert_eq!(fit(4096, u64::MAX), 4096);
        assert_eq!(fit(10, 0), 1, "always serve at least one");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let before = getrlimit(Resource::Nofile);
        let after = raise_soft_limit();
        assert_eq!(Some(after), before.maximum.or(Some(u64::MAX)));
    }
}
