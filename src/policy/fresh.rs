//! `max_auth_age`: whether a sign-in at the IdP is recent enough for the
//! rules of a path. One test, used twice: on every request, against the
//! sign-in time the session carries (`gate::decide`), and when a login
//! comes back, against the sign-in time the IdP just reported
//! (`server::App::complete_login`), so an IdP that ignores
//! `prompt=login`/`max_age` or `ForceAuthn` and repeats an old sign-in
//! cannot satisfy the rule.

use std::time::Duration;

use super::rules::{self, Selected};
use crate::config::Access;

/// The strictest `max_auth_age` of the rules that apply to the page a login
/// returns to (`return_to`: a same-origin path, query allowed). A login
/// always comes back with `GET`.
pub fn required_for_return(access: &Access, return_to: &str) -> Option<Duration> {
    let path = return_to.split(['?', '#']).next().unwrap_or("/");
    let selected: Vec<Selected<'_>> =
        rules::applicable(access, &http::Method::GET, path).unwrap_or_default();
    rules::max_auth_age(&selected)
}

/// Whether a sign-in at `signed_in_at` (Unix seconds, the IdP's clock) is
/// at most `max_age` old at `now`, allowing `skew` between the clocks.
/// An unknown sign-in time is never recent: the IdP did not say, so the
/// rule is not met (fail closed). A sign-in time in the future beyond the
/// skew is not believed either.
pub fn signed_in_within(
    signed_in_at: Option<u64>,
    max_age: Duration,
    skew: Duration,
    now: u64,
) -> bool {
    let Some(at) = signed_in_at else {
        return false;
    };
    let skew = skew.as_secs();
    if at > now.saturating_add(skew) {
        return false;
    }
    now.saturating_sub(at) <= max_age.as_secs().saturating_add(skew)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const SKEW: Duration = Duration::from_secs(5);

    #[test]
    fn recent_enough_within_the_age_and_the_skew() {
        let now = 1_000_000;
        assert!(signed_in_within(Some(now), MIN, SKEW, now));
        assert!(signed_in_within(Some(now - 60), MIN, SKEW, now));
        assert!(signed_in_within(Some(now - 65), MIN, SKEW, now));
        assert!(!signed_in_within(Some(now - 66), MIN, SKEW, now));
        assert!(!signed_in_within(Some(0), MIN, SKEW, now));
    }

    #[test]
    fn unknown_or_future_sign_in_times_are_not_recent() {
        let now = 1_000_000;
        assert!(!signed_in_within(None, MIN, SKEW, now));
        assert!(signed_in_within(Some(now + 5), MIN, SKEW, now));
        assert!(!signed_in_within(Some(now + 6), MIN, SKEW, now));
        assert!(!signed_in_within(Some(u64::MAX), MIN, SKEW, now));
    }

    fn access(yaml: &str) -> Access {
        crate::config::from_yaml_str(&format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\naccess:\n{yaml}"
        ))
        .unwrap()
        .access
    }

    #[test]
    fn the_return_path_picks_the_rule_and_ignores_the_query() {
        let a = access(
            "  rules:\n    - description: Admin\n      paths: [{prefix: /admin/}]\n      max_auth_age: 15m\n    - description: Reports\n      paths: [{prefix: /reports/}]\n",
        );
        let fifteen = Some(Duration::from_secs(900));
        assert_eq!(required_for_return(&a, "/admin/users?x=1"), fifteen);
        assert_eq!(required_for_return(&a, "/admin/users#top"), fifteen);
        // Canonical reading: a dot segment cannot leave the rule.
        assert_eq!(required_for_return(&a, "/reports/../admin/x"), fifteen);
        assert_eq!(required_for_return(&a, "/reports/x"), None);
        assert_eq!(required_for_return(&a, "/"), None);
    }
}
