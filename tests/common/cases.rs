//! Looped tests (attack batteries, tables of inputs) check every case and
//! fail once at the end, naming every case that failed: one broken case
//! must not hide the others.

use std::fmt::{Debug, Display};

/// The failed cases of one loop. Fails the test when dropped (or on
/// [`Cases::finish`]) if any case failed.
#[must_use = "call finish() after the loop"]
#[derive(Default)]
pub struct Cases {
    checked: usize,
    failed: Vec<String>,
}

impl Cases {
    pub fn new() -> Cases {
        Cases::default()
    }

    /// Records `case` as failed, with `why`, unless `ok`.
    pub fn check(&mut self, case: impl Display, ok: bool, why: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            self.failed.push(format!("{case}: {}", why()));
        }
    }

    /// Records `case` as failed unless `got == want`.
    pub fn eq<T: PartialEq + Debug>(&mut self, case: impl Display, got: T, want: T) {
        let ok = got == want;
        self.check(case, ok, move || format!("got {got:?}, expected {want:?}"));
    }

    /// Fails the test naming every failed case.
    #[allow(
        clippy::unused_self,
        reason = "taking `self` ends the cases here: the report is in `Drop`"
    )]
    pub fn finish(self) {}
}

impl Drop for Cases {
    fn drop(&mut self) {
        assert!(
            !(!self.failed.is_empty() && !std::thread::panicking()),
            "{} of {} cases failed:\n  {}",
            self.failed.len(),
            self.checked,
            self.failed.join("\n  ")
        );
    }
}
