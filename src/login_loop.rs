//! Login loop detection, stateless: a small cookie counts the logins one
//! browser completed within a window. A browser that completes a login and
//! comes back without a session (cookie blocked, clock skew, a proxy eating
//! headers) would bounce forever; after a few rounds it ends on a page that
//! says what to check. Counting completed logins, not started ones, keeps
//! restored tabs (many starts at once) from looking like a loop.

use crate::config::Login;
use crate::session::cookies::{self, CookieAttrs};

const NAME: &str = "portcullis_loop";

fn name(attrs: CookieAttrs) -> String {
    if attrs.secure {
        format!("__Host-{NAME}")
    } else {
        NAME.to_string()
    }
}

/// Logins completed in the current window, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub count: u32,
    pub window_start: u64,
    window_secs: u64,
}

impl Attempts {
    /// `Set-Cookie` value recording this attempt.
    pub fn set_cookie(&self, attrs: CookieAttrs) -> String {
        let remaining = (self.window_start + self.window_secs)
            .saturating_sub(crate::clock::now())
            .max(1);
        cookies::set_cookie(
            &name(attrs),
            &format!("{}.{}", self.count, self.window_start),
            remaining,
            attrs,
        )
    }
}

/// Whether a new login start would continue a loop.
pub fn is_looping(jar: &[(&str, &str)], cfg: &Login, now: u64) -> Option<u32> {
    let seen = count(jar, cfg, now).count - 1;
    (seen >= cfg.loop_max).then_some(seen)
}

/// This completed login, counted with the earlier ones in the window.
pub fn count(jar: &[(&str, &str)], cfg: &Login, now: u64) -> Attempts {
    let window_secs = cfg.loop_window.as_secs();
    let previous = jar
        .iter()
        .find(|(n, _)| *n == NAME || n.strip_prefix("__Host-") == Some(NAME))
        .and_then(|(_, v)| {
            let (c, t) = v.split_once('.')?;
            Some((c.parse::<u32>().ok()?, t.parse::<u64>().ok()?))
        })
        .filter(|(_, start)| *start <= now && now - start < window_secs);
    let (count, window_start) = match previous {
        Some((c, start)) => (c.saturating_add(1), start),
        None => (1, now),
    };
    Attempts {
        count,
        window_start,
        window_secs,
    }
}

/// Deletes the counter once a session works again.
pub fn clear_if_present(jar: &[(&str, &str)], attrs: CookieAttrs) -> Option<String> {
    let n = name(attrs);
    jar.iter()
        .any(|(c, _)| *c == n)
        .then(|| cookies::clear_cookie(&n, attrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ATTRS: CookieAttrs = CookieAttrs {
        secure: true,
        same_site_none: false,
    };

    fn cfg() -> Login {
        Login {
            loop_max: 3,
            loop_window: Duration::from_secs(60),
            transaction_lifetime: Duration::from_secs(600),
        }
    }

    fn value(set_cookie: &str) -> String {
        set_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string()
    }

    #[test]
    fn counts_within_window_then_detects_loop() {
        let mut v = String::new();
        for i in 1..=4u32 {
            let jar_owned = if v.is_empty() {
                vec![]
            } else {
                vec![("__Host-portcullis_loop", v.as_str())]
            };
            let a = count(&jar_owned, &cfg(), 1000 + u64::from(i));
            assert_eq!(a.count, i);
            assert_eq!(
                is_looping(&jar_owned, &cfg(), 1000 + u64::from(i)).is_some(),
                i > 3
            );
            v = value(&a.set_cookie(ATTRS));
        }
    }

    #[test]
    fn a_start_after_loop_max_completions_is_a_loop() {
        assert_eq!(is_looping(&[], &cfg(), 1000), None);
        assert_eq!(
            is_looping(&[("__Host-portcullis_loop", "2.990")], &cfg(), 1000),
            None
        );
        assert_eq!(
            is_looping(&[("__Host-portcullis_loop", "3.990")], &cfg(), 1000),
            Some(3)
        );
    }

    #[test]
    fn window_expiry_resets() {
        let a = count(&[("__Host-portcullis_loop", "9.1000")], &cfg(), 1061);
        assert_eq!(a.count, 1);
        let garbage = count(&[("__Host-portcullis_loop", "x.y")], &cfg(), 1061);
        assert_eq!(garbage.count, 1);
    }

    #[test]
    fn cleared_only_when_present() {
        assert!(clear_if_present(&[], ATTRS).is_none());
        let c = clear_if_present(&[("__Host-portcullis_loop", "2.5")], ATTRS).unwrap();
        assert!(c.starts_with("__Host-portcullis_loop=; Max-Age=0"));
    }
}
