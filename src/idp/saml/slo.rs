//! The Single Logout endpoint. `GET /.portcullis/saml/slo` (HTTP-Redirect
//! binding): the IdP's LogoutResponse after a logout started here, or a
//! LogoutRequest from the IdP, checked by [`super::logout`] before it may
//! end a session. `POST` with a SOAP envelope (SOAP binding, server to
//! server): a signed LogoutRequest, checked by [`super::soap`], that
//! revokes the sessions it names; answered with a SOAP LogoutResponse.
//!
//! It never touches session cookies itself: ending the session is asked of
//! the server through [`EndpointOutcome::EndSession`].

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::soap::{self, SoapError};
use super::{SamlLogin, logout, logout_response, redirect, request};
use crate::Body;
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

    /// `POST /.portcullis/saml/slo` with `Content-Type: text/xml`: a SOAP
    /// LogoutRequest from the IdP. Answered with HTTP 200 and a SOAP
    /// LogoutResponse (Success, or Requester/Responder when refused), per
    /// SAML bindings §3.2.3.3; with 400 and a SOAP fault when the request
    /// is no SOAP message carrying one LogoutRequest.
    pub(super) async fn soap_logout(
        &self,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
    ) -> EndpointOutcome {
        let sp = self.cfg.sp_entity_id.clone();
        let answer = match self.soap_checked(ctx, req).await {
            Ok(request) => {
                let revoked = revoke_named(ctx, &request, &self.active().md.entity_id);
                match revoked {
                    Ok(()) => {
                        crate::audit::idp_logout(
                            ctx.request,
                            None,
                            "revoked",
                            "the sessions named by the SOAP LogoutRequest are revoked",
                        );
                        crate::metrics::saml_idp_logout("revoked");
                        soap_response(
                            StatusCode::OK,
                            soap::response_envelope(
                                &sp,
                                Some(&request.id),
                                request::LogoutStatus::Success,
                            ),
                        )
                    }
                    Err(()) => soap_refused(ctx, &sp, &SoapError::Store),
                }
            }
            Err(e) => soap_refused(ctx, &sp, &e),
        };
        EndpointOutcome::Respond(answer)
    }

    async fn soap_checked(
        &self,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
    ) -> Result<logout::LogoutRequest, SoapError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !soap::is_soap_content_type(content_type) {
            return Err(SoapError::ContentType);
        }
        let body = Limited::new(req.into_body(), soap::MAX_SOAP_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    SoapError::TooLarge
                } else {
                    SoapError::NotSoap("the body could not be read")
                }
            })?
            .to_bytes();
        let xml = String::from_utf8(body.to_vec()).map_err(|_| SoapError::NotSoap("not UTF-8"))?;
        // Cheap checks first, then the shared verification budget (guard
        // rail 2, docs/design.md): signature work leaks in libxml when the
        // signed element is not the root, as here.
        soap::prescan(&xml)?;
        self.budget
            .take(ctx.request.client_ip, None, Instant::now())
            .map_err(|spent| {
                crate::metrics::saml_verify_refused(spent.label());
                SoapError::Busy(spent)
            })?;
        let active = self.active();
        let certs = active.md.signing_certs.clone();
        let signed = tokio::task::spawn_blocking(move || soap::verify(&xml, &certs))
            .await
            .map_err(|_| SoapError::Signature)??;
        let expect = logout::Expect {
            md: &active.md,
            slo_url: &self.cfg.slo_url,
            skew: chrono::Duration::from_std(self.cfg.clock_skew)
                .unwrap_or_else(|_| chrono::Duration::seconds(60)),
            now: chrono::Utc::now(),
        };
        logout::accept(signed, &expect, &self.logout_ids).map_err(SoapError::Logout)
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
        // A list that cannot be stored is logged; the browser's own
        // session still ends.
        let _ = revoke_named(ctx, &request, &active.md.entity_id);
        let (status, clear, outcome, user) = match &session {
            None => (request::LogoutStatus::Success, true, "no_session", None),
            Some(c)
                if request
                    .name_id
                    .names(c.saml_name_id(), c.sub_fmt.as_deref()) =>
            {
                (
                    request::LogoutStatus::Success,
                    true,
                    "ended",
                    Some(c.user.as_str()),
                )
            }
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

fn soap_refused(ctx: LoginCtx<'_>, sp_entity_id: &str, e: &SoapError) -> Response<Body> {
    crate::audit::idp_logout(ctx.request, None, "refused", &e.to_string());
    crate::metrics::saml_idp_logout("refused");
    if e.is_fault() {
        soap_response(
            StatusCode::BAD_REQUEST,
            soap::fault_envelope(&e.to_string()),
        )
    } else {
        soap_response(
            StatusCode::OK,
            soap::response_envelope(sp_entity_id, None, e.status()),
        )
    }
}

fn soap_response(status: StatusCode, xml: String) -> Response<Body> {
    let mut resp = Response::new(crate::full_body(Bytes::from(xml)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    resp
}

fn logout_refused(ctx: LoginCtx<'_>, e: &logout::LogoutError) -> EndpointOutcome {
    crate::audit::idp_logout(ctx.request, None, "refused", &e.to_string());
    crate::metrics::saml_idp_logout("refused");
    EndpointOutcome::Refused(Page::new(PageKind::BadRequest))
}

/// What a checked LogoutRequest ends everywhere, not only in the browser
/// that carried it: each IdP session it names by `SessionIndex`, else every
/// session issued for its NameID (value and Format, [`Target::NameId`]). Goes through `Revocations::add_many`, which
/// audits and counts. A list that cannot be stored is logged (and `Err`).
fn revoke_named(ctx: LoginCtx<'_>, request: &logout::LogoutRequest, idp: &str) -> Result<(), ()> {
    let at_ms = crate::clock::now_ms();
    let entry = |target| Entry {
        target,
        at_ms,
        source: Source::SamlLogout,
        by: format!("saml:{idp}"),
    };
    let entries: Vec<Entry> = if request.session_indexes.is_empty() {
        vec![entry(Target::NameId {
            value: request.name_id.value.clone(),
            format: request.name_id.format.clone(),
        })]
    } else {
        request
            .session_indexes
            .iter()
            .map(|i| entry(Target::IdpSession(i.clone())))
            .collect()
    };
    ctx.sessions
        .revocations()
        .add_many(&entries)
        .map(|_| ())
        .map_err(|e| tracing::error!(error = %e, "SAML logout: revocation not stored"))
}
