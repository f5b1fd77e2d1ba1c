//! Which serving thread this is. Connections are served on one
//! current-thread runtime per core (`connections::serve`), and the upstream
//! client keeps one connection pool per serving thread
//! (`proxy::UpstreamClient`), so a request, its client connection and its
//! upstream connection stay on one thread: no hand-over between threads,
//! no wake-up of another core (docs/performance.md, "Where the time goes").

use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The number of serving threads: one per CPU this process may use
/// (`available_parallelism` honours CPU affinity and cgroup quotas).
pub fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// Marks the current thread as serving thread `i` (below [`count`]).
pub fn set_index(i: usize) {
    INDEX.with(|c| c.set(Some(i)));
}

/// This thread's serving index; 0 on any other thread (start-up, the
/// background runtime, benchmarks), which then shares the first pool.
pub fn index() -> usize {
    INDEX.with(Cell::get).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_not_marked_is_index_zero_and_a_marked_one_keeps_its_own() {
        assert!(count() >= 1);
        std::thread::spawn(|| assert_eq!(index(), 0))
            .join()
            .unwrap();
        std::thread::spawn(|| {
            set_index(3);
            assert_eq!(index(), 3);
            std::thread::spawn(|| assert_eq!(index(), 0, "not inherited"))
                .join()
                .unwrap();
        })
        .join()
        .unwrap();
    }
}
