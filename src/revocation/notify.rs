//! Tells whoever holds a session for a long time (a spliced WebSocket, a
//! streaming response: `proxy::session_bound`) that the list gained
//! entries, so each re-checks its own session then instead of polling: a
//! generation counter on a `tokio::sync::watch` channel, bumped once per
//! batch of new entries. Ordinary requests never subscribe.

use tokio::sync::watch;

pub struct Notifier {
    generation: watch::Sender<u64>,
}

impl Default for Notifier {
    fn default() -> Notifier {
        Notifier {
            generation: watch::Sender::new(0),
        }
    }
}

impl Notifier {
    /// New entries came into force. Never fails: with no subscriber the
    /// counter still moves.
    pub fn bump(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Wakes (`changed()`) at every [`Self::bump`] after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_wakes_at_each_bump_and_not_before() {
        let n = Notifier::default();
        n.bump();
        let mut rx = n.subscribe();
        assert!(!rx.has_changed().unwrap(), "a bump before subscribing");
        n.bump();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 2);
        assert!(!rx.has_changed().unwrap());
    }
}
