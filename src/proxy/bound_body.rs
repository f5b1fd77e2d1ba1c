//! A response body that ends with its session ([`super::session_bound`]):
//! the upstream's body, passed on frame by frame, until the session is
//! revoked or expires; then an error, so the server aborts the response
//! (the client sees it cut short, never a complete-looking end).
//!
//! The watch is armed only the first time the body has to wait for the
//! upstream: a body that is already there is passed on without it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::session_bound::{EndReason, Watch};
use crate::{Body, BoxError};

type Ended = Pin<Box<dyn Future<Output = EndReason> + Send>>;

enum State {
    /// Not armed yet: the watch to arm when the body first waits.
    Idle(Option<Watch>),
    Armed(Ended),
    /// The session ended and the body was cut.
    Cut,
}

pub(super) struct BoundBody {
    inner: Body,
    state: State,
}

/// The error the server sees when the session ended mid-body.
#[derive(Debug, thiserror::Error)]
#[error("the response was cut: its session was {}", .0.label())]
pub struct SessionEnded(pub EndReason);

impl BoundBody {
    pub(super) fn new(inner: Body, watch: Watch) -> BoundBody {
        BoundBody {
            inner,
            state: State::Idle(Some(watch)),
        }
    }
}

impl HttpBody for BoundBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if matches!(this.state, State::Cut) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if let State::Idle(watch) = &mut this.state
            && let Some(watch) = watch.take()
        {
            this.state = State::Armed(Box::pin(watch.ended()));
        }
        if let State::Armed(ended) = &mut this.state
            && let Poll::Ready(reason) = ended.as_mut().poll(cx)
        {
            this.state = State::Cut;
            return Poll::Ready(Some(Err(Box::new(SessionEnded(reason)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
