//! The Single Logout endpoint (`GET /.portcullis/saml/slo`, HTTP-Redirect
//! binding): the IdP's LogoutResponse after a logout started here, or a
//! LogoutRequest from the IdP, checked by [`super::logout`] before it may
//! end a session.
//!
//! It never touches session cookies itself: ending the session is asked of
//! the server through [`EndpointOutcome::EndSession`].

use http::Request;
use hyper::body::Incoming;

use super::{SamlLogin, logout, logout_response, redirect, request};
use crate::idp::{EndpointOutcome, LoginCtx};
use crate::pages::{Page, PageKind};
use crate::policy::return_to::safe_return_path;
use crate::revocation::entry::Source;
use crate::revocation::{Entry, Target};

impl SamlLogin {
    /// `GET /.portcullis/saml/slo`: the IdP's LogoutResponse after an
    /// SP-initiated logout (back to the return path), or an IdP-initiated
    /// LogoutRequest ([`logout`] checks it; then the session it names is
    /// ended and the IdP gets its LogoutResponse).
    pub(super) fn slo(&self, ctx: LoginCtx<'_>, req: &Request<Incoming>) -> EndpointOutcome {
        let query = req.uri().query().unwrap_or("");
        let parsed = redirect::RedirectMessage::parse(query).and_then(|m| {
            let relay = m.relay_state()?;
            Ok((m, relay))
        });
        let (msg, relay) = match parsed {
            Ok(p) => p,
            Err(e) => return logout_refused(ctx, &logout::LogoutError::Query(e)),
        };
        match msg.kind {
            redirect::Kind::Response => Self::logout_answered(&msg, relay.as_deref(), &self.origin),
            redirect::Kind::Request => self.idp_logout(ctx, &msg, relay.as_deref()),
        }
    }

    /// The IdP's LogoutResponse to a logout started here. It grants
    /// nothing: its status only decides what the user is told, and the
    /// (checked) way back is used when the IdP ended its session.
    fn logout_answered(
        msg: &redirect::RedirectMessage<'_>,
        relay: Option<&str>,
        origin: &str,
    ) -> EndpointOutcome {
        let answer = msg.xml(logout_response::MAX_XML_BYTES).map_or_else(
            || logout_response::Answer::NotEnded("unreadable".into()),
            |xml| logout_response::read(&xml),
        );
        match answer {
            logout_response::Answer::Ended => {
                EndpointOutcome::Respond(crate::pages::redirect(&relay.map_or_else(
                    || format!("{}signed-out", crate::RESERVED_PREFIX),
                    |r| safe_return_path(Some(r), origin),
                )))
            }
            logout_response::Answer::Partial => {
                tracing::info!(
                    "SAML logout: the IdP ended its session but could not reach every application of it (PartialLogout)"
                );
                EndpointOutcome::Show(Page::new(PageKind::SignedOut).with_detail(
                    "The identity provider ended your sign-in, but could not sign you out of every other application. Close the browser to be sure.",
                ))
            }
            logout_response::Answer::NotEnded(status) => {
                tracing::warn!(
                    status = %status,
                    "SAML logout: the IdP did not end its session; if it says the request is not valid, check that it accepts unsigned LogoutRequests (else set saml.sign_requests: true) and that the NameID and SessionIndex of its assertions are unchanged"
                );
                EndpointOutcome::Show(Page::new(PageKind::SignedOut).with_detail(format!(
                    "The identity provider did not end its own sign-in ({status}). Close the browser to end it."
                )))
            }
        }
    }

    fn idp_logout(
        &self,
        ctx: LoginCtx<'_>,
        msg: &redirect::RedirectMessage<'_>,
        relay: Option<&str>,
    ) -> EndpointOutcome {
        let active = self.active();
        let Some(slo) = active.md.slo_redirect.clone() else {
            return logout_refused(ctx, &logout::LogoutError::NoSloEndpoint);
        };
        let expect = logout::Expect {
            md: &active.md,
            slo_url: &self.cfg.slo_url,
            skew: chrono::Duration::from_std(self.cfg.clock_skew)
                .unwrap_or_else(|_| chrono::Duration::seconds(60)),
            now: chrono::Utc::now(),
        };
        let request = match logout::check(msg, &expect, &self.logout_ids) {
            Ok(r) => r,
            Err(e) => return logout_refused(ctx, &e),
        };
        let session = match ctx.sessions.verify(ctx.request_cookies) {
            Some(Ok(v)) => Some(v.claims),
            _ => None,
        };
        // After reading this browser's session (the revocation would hide
        // it), before answering.
        revoke_named(ctx, &request, &active.md.entity_id);
        let (status, clear, outcome, user) = match &session {
            None => (request::LogoutStatus::Success, true, "no_session", None),
            Some(c) if request.name_id.names(&c.sub, c.sub_fmt.as_deref()) => (
                request::LogoutStatus::Success,
                true,
                "ended",
                Some(c.user.as_str()),
            ),
            Some(c) => (
                request::LogoutStatus::UnknownPrincipal,
                false,
                "ignored",
                Some(c.user.as_str()),
            ),
        };
        let reason = match outcome {
            "ignored" => {
                "the LogoutRequest names another NameID than this session's; the session is kept"
            }
            "no_session" => "no session in this browser",
            _ => "the session named by the LogoutRequest is ended",
        };
        crate::audit::idp_logout(ctx.request, user, outcome, reason);
        crate::metrics::saml_idp_logout(outcome);
        let sign = self.cfg.sign_requests.then_some(&self.keys.key);
        match request::logout_response_url(
            &self.cfg.sp_entity_id,
            &slo,
            &request.id,
            status,
            relay.unwrap_or(""),
            sign,
        ) {
            Ok(url) => {
                let resp = crate::pages::redirect(url.as_str());
                if clear {
                    EndpointOutcome::EndSession(resp)
                } else {
                    EndpointOutcome::Respond(resp)
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot build the LogoutResponse");
                EndpointOutcome::Refused(Page::new(PageKind::LoginFailed))
            }
        }
    }
}

fn logout_refused(ctx: LoginCtx<'_>, e: &logout::LogoutError) -> EndpointOutcome {
    crate::audit::idp_logout(ctx.request, None, "refused", &e.to_string());
    crate::metrics::saml_idp_logout("refused");
    EndpointOutcome::Refused(Page::new(PageKind::BadRequest))
}

/// What a checked LogoutRequest ends everywhere, not only in the browser
/// that carried it: each IdP session it names by `SessionIndex`, else every
/// session of its NameID. Goes through `Revocations::add_many`, which
/// audits and counts. A list that cannot be stored is logged; the browser's
/// own session still ends.
fn revoke_named(ctx: LoginCtx<'_>, request: &logout::LogoutRequest, idp: &str) {
    let at_ms = crate::clock::now_ms();
    let entry = |target| Entry {
        target,
        at_ms,
        source: Source::SamlLogout,
        by: format!("saml:{idp}"),
    };
    let entries: Vec<Entry> = if request.session_indexes.is_empty() {
        vec![entry(Target::Subject(request.name_id.value.clone()))]
    } else {
        request
            .session_indexes
            .iter()
            .map(|i| entry(Target::IdpSession(i.clone())))
            .collect()
    };
    if let Err(e) = ctx.sessions.revocations().add_many(&entries) {
        tracing::error!(error = %e, "SAML logout: revocation not stored");
    }
}
