//! Friendly error pages and their JSON twins: what happened, what to try,
//! the operator's support link and footer, and a request id that also
//! appears in the log. Never a stack trace or an internal detail.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::Body;
use crate::config::Pages;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    BadRequest,
    MethodNotAllowed,
    Misdirected,
    LoginRequired,
    /// Signed in, but longer ago than the path's `max_auth_age` allows.
    ReauthRequired,
    /// The IdP came back without a sign-in recent enough for the rule of
    /// the page (it ignored `prompt=login`/`max_age` or `ForceAuthn`).
    FreshSignInNotConfirmed,
    NoIdentityProvider,
    Forbidden,
    /// `roles` are configured, none matches the user, and there is no
    /// `default_role`.
    NoRole,
    NotFound,
    BadGateway,
    IdpUnavailable,
    GatewayTimeout,
    LoginLoop,
    LoginFailed,
    /// A login failed for a reason only the operator can fix.
    Misconfigured,
    TooLarge,
    SignedOut,
    /// `assertion.enabled` and the identity assertion could not be signed:
    /// the app relies on it, so nothing is forwarded.
    AssertionUnavailable,
    /// A form POST found no session: its fields are kept in the browser
    /// while the user signs in again (`resubmit`).
    FormKept,
    /// A form POST found no session and cannot be kept (too large, files,
    /// malformed, or multipart).
    FormNotKept,
    /// Back from signing in: the kept form is being sent again.
    Resubmitting,
}

impl PageKind {
    pub fn status(self) -> StatusCode {
        match self {
            PageKind::BadRequest | PageKind::LoginFailed => StatusCode::BAD_REQUEST,
            PageKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PageKind::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            PageKind::LoginRequired
            | PageKind::ReauthRequired
            | PageKind::FormKept
            | PageKind::FormNotKept => StatusCode::UNAUTHORIZED,
            PageKind::Forbidden | PageKind::FreshSignInNotConfirmed | PageKind::NoRole => {
                StatusCode::FORBIDDEN
            }
            PageKind::NotFound => StatusCode::NOT_FOUND,
            PageKind::BadGateway => StatusCode::BAD_GATEWAY,
            PageKind::NoIdentityProvider
            | PageKind::IdpUnavailable
            | PageKind::AssertionUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            PageKind::LoginLoop => StatusCode::LOOP_DETECTED,
            PageKind::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
            PageKind::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            PageKind::SignedOut | PageKind::Resubmitting => StatusCode::OK,
        }
    }

    /// Machine-readable code for the JSON twin.
    pub fn code(self) -> &'static str {
        match self {
            PageKind::BadRequest => "bad_request",
            PageKind::MethodNotAllowed => "method_not_allowed",
            PageKind::Misdirected => "misdirected_request",
            PageKind::LoginRequired => "login_required",
            PageKind::ReauthRequired => "reauthentication_required",
            PageKind::FreshSignInNotConfirmed => "fresh_sign_in_not_confirmed",
            PageKind::NoIdentityProvider => "no_identity_provider",
            PageKind::Forbidden => "forbidden",
            PageKind::NoRole => "no_role",
            PageKind::NotFound => "not_found",
            PageKind::BadGateway => "bad_gateway",
            PageKind::IdpUnavailable => "identity_provider_unavailable",
            PageKind::GatewayTimeout => "gateway_timeout",
            PageKind::LoginLoop => "login_loop",
            PageKind::LoginFailed => "login_failed",
            PageKind::Misconfigured => "sign_in_misconfigured",
            PageKind::TooLarge => "session_too_large",
            PageKind::SignedOut => "signed_out",
            PageKind::AssertionUnavailable => "identity_assertion_unavailable",
            PageKind::FormKept => "login_required_form_kept",
            PageKind::FormNotKept => "login_required_form_not_kept",
            PageKind::Resubmitting => "resubmitting",
        }
    }

    fn title(self) -> &'static str {
        match self {
            PageKind::BadRequest => "This request could not be understood",
            PageKind::MethodNotAllowed => "This kind of request is not accepted here",
            PageKind::Misdirected => "This address is not served here",
            PageKind::LoginRequired => "Please sign in",
            PageKind::ReauthRequired => "Please sign in again",
            PageKind::FreshSignInNotConfirmed => "A recent sign-in is needed here",
            PageKind::NoIdentityProvider => "Sign-in is not set up yet",
            PageKind::Forbidden => "You do not have access to this application",
            PageKind::NoRole => "Your account has no role in this application",
            PageKind::NotFound => "Page not found",
            PageKind::BadGateway => "The application is not responding",
            PageKind::IdpUnavailable => "The sign-in service cannot be reached",
            PageKind::GatewayTimeout => "The application took too long to answer",
            PageKind::LoginLoop => "Sign-in keeps starting over",
            PageKind::LoginFailed => "Sign-in did not complete",
            PageKind::Misconfigured => "Sign-in to this application is misconfigured",
            PageKind::TooLarge => "Your account information is too large for a cookie",
            PageKind::SignedOut => "You are signed out",
            PageKind::AssertionUnavailable => "The application cannot be told who you are",
            PageKind::FormKept => "Your session has ended",
            PageKind::FormNotKept => "Your form could not be kept",
            PageKind::Resubmitting => "Sending your form",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            PageKind::BadRequest => {
                "The request was malformed or incomplete. Go back and try again."
            }
            PageKind::MethodNotAllowed => {
                "The sign-in gate does not open tunnels (CONNECT) to the application."
            }
            PageKind::Misdirected => {
                "The host name in this request is not the one this sign-in gate protects. Use the application's usual address."
            }
            PageKind::LoginRequired => "This application needs you to sign in first.",
            PageKind::ReauthRequired => {
                "This part of the application needs a recent sign-in, and yours is older. Sign in again to continue."
            }
            PageKind::FreshSignInNotConfirmed => {
                "This part of the application needs a recent sign-in, and the identity provider did not confirm one. Start again from the application's address; if it keeps happening, tell the support contact and quote the request id. Administrators: the log names the fix."
            }
            PageKind::NoIdentityProvider => {
                "No identity provider is configured for this application, so nobody can sign in. Administrators: add an `oidc` or `saml` section to this domain's configuration."
            }
            PageKind::Forbidden => {
                "You are signed in, but your account or network is not among those allowed to use this application. If you think you should have access, ask the support contact below and quote the request id."
            }
            PageKind::NoRole => {
                "You are signed in, but this application gives a role to each of its users and none applies to your account. If you think you should have access, ask the support contact below and quote the request id."
            }
            PageKind::NotFound => "There is nothing at this address.",
            PageKind::BadGateway => {
                "The sign-in gate could not reach the application behind it. It may be restarting; try again in a minute."
            }
            PageKind::IdpUnavailable => {
                "The identity provider did not answer. People already signed in can keep working; try signing in again in a few minutes."
            }
            PageKind::GatewayTimeout => {
                "The application behind the sign-in gate did not answer in time. Try again; if it keeps happening, tell the support contact."
            }
            PageKind::LoginLoop => {
                "You were sent to sign in several times in a short while, and each time the browser came back without a session. Try closing other tabs of this application and signing in once. Administrators: check that the browser keeps the session cookie: the configured domain and scheme match the address users type, the server clocks agree (clock skew), nothing between the browser and Portcullis strips Set-Cookie or Cookie headers, and the cookies are not blocked (SameSite, third-party cookie settings, https)."
            }
            PageKind::LoginFailed => {
                "The identity provider's answer could not be accepted. Start again from the application's address; if it keeps failing, tell the support contact and quote the request id."
            }
            PageKind::Misconfigured => {
                "Sign-in to this application is misconfigured, so trying again will not help: tell the support contact and quote the request id below. The log names the fix."
            }
            PageKind::TooLarge => {
                "Your identity provider sends more groups or attributes than a browser cookie can hold. Administrators: limit the groups the identity provider releases for this application."
            }
            PageKind::AssertionUnavailable => {
                "You are signed in, but the sign-in gate could not sign the identity statement this application checks, so your request was not passed on. Tell the support contact and quote the request id below. Administrators: the log names the assertion key problem."
            }
            PageKind::SignedOut => {
                "Your session for this application has ended. You may still be signed in at your identity provider; close the browser to end that session too."
            }
            PageKind::FormKept => {
                "Signing you in again. Your form is kept in this browser tab and will be sent as soon as you are back."
            }
            PageKind::FormNotKept => {
                "Your session ended before the form was sent, and this form cannot be kept while you sign in again (it is too large, carries files, or could not be read). Sign in, then fill it in again."
            }
            PageKind::Resubmitting => {
                "You are signed in again, and the form you filled in is being sent."
            }
        }
    }
}

/// A page to show: its kind and, optionally, a detail safe to display (such
/// as the IdP's own error description) and the login URL for scripts.
#[derive(Debug, Clone)]
pub struct Page {
    pub kind: PageKind,
    pub detail: Option<String>,
    pub login_url: Option<String>,
    /// The page's one script and the JSON it reads (`resubmit`): allowed
    /// by a nonce, the data in a block that never runs.
    pub script: Option<Script>,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub code: &'static str,
    pub data: serde_json::Value,
}

/// JSON that can sit inside `<script type="application/json">`: no `<`,
/// `>` or `&` (no `</script>`, no `<!--`), no line separators.
fn json_in_html(v: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

impl Page {
    pub fn new(kind: PageKind) -> Page {
        Page {
            kind,
            detail: None,
            login_url: None,
            script: None,
        }
    }

    pub fn with_script(mut self, code: &'static str, data: serde_json::Value) -> Page {
        self.script = Some(Script { code, data });
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Page {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_login_url(mut self, url: impl Into<String>) -> Page {
        self.login_url = Some(url.into());
        self
    }

    pub fn render(&self, cfg: &Pages, request_id: &str, json: bool) -> Response<Body> {
        let nonce = crate::random_id(16);
        let (content_type, body) = if json {
            ("application/json", self.json(request_id))
        } else {
            (
                "text/html; charset=utf-8",
                self.html(cfg, request_id, &nonce),
            )
        };
        let mut resp = Response::new(crate::full_body(Bytes::from(body)));
        *resp.status_mut() = self.kind.status();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        let csp = match &self.script {
            Some(_) if !json => HeaderValue::from_str(&format!(
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
            ))
            .ok(),
            _ => None,
        };
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            csp.unwrap_or(HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            )),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-request-id", v);
        }
        resp
    }

    fn json(&self, request_id: &str) -> String {
        let mut v = serde_json::json!({
            "error": self.kind.code(),
            "message": self.kind.title(),
            "request_id": request_id,
        });
        if let Some(d) = &self.detail {
            v["detail"] = d.as_str().into();
        }
        if let Some(u) = &self.login_url {
            v["login_url"] = u.as_str().into();
        }
        v.to_string()
    }

    fn html(&self, cfg: &Pages, request_id: &str, nonce: &str) -> String {
        use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
        let detail = self
            .detail
            .as_deref()
            .map(|d| format!("<p class=\"detail\">{}</p>", text(d)))
            .unwrap_or_default();
        let action = self
            .login_url
            .as_deref()
            .map(|u| {
                format!(
                    "<p><a class=\"button\" href=\"{}\">Sign in</a></p>",
                    attr(u)
                )
            })
            .unwrap_or_default();
        let support = cfg
            .support_url
            .as_deref()
            .map(|u| {
                format!(
                    "<p>Need help? <a href=\"{}\">Contact support</a>.</p>",
                    attr(u)
                )
            })
            .unwrap_or_default();
        let footer = cfg
            .footer
            .as_deref()
            .map(|f| format!("<footer>{}</footer>", text(f)))
            .unwrap_or_default();
        let script = self
            .script
            .as_ref()
            .map(|s| {
                format!(
                    "<noscript><p>This page needs JavaScript to keep your form; sign in and fill it in again.</p></noscript>\n<script type=\"application/json\" id=\"portcullis-data\">{}</script>\n<script nonce=\"{nonce}\">{}</script>\n",
                    json_in_html(&s.data),
                    s.code
                )
            })
            .unwrap_or_default();
        let status = self.kind.status();
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}}main{{max-width:36rem;margin:10vh auto;background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002}}h1{{font-size:1.4rem;margin-top:0}}.detail{{background:#fff4e5;padding:.6rem .8rem;border-radius:4px}}.rid{{color:#667;font-size:.85rem}}.button{{display:inline-block;background:#2557d6;color:#fff;padding:.5rem 1rem;border-radius:4px;text-decoration:none}}footer{{color:#667;font-size:.85rem;margin-top:1.5rem}}</style>
</head><body><main>
<h1>{title}</h1>
<p id="explanation">{explanation}</p>
{detail}{action}{support}{script}
<p class="rid">{code} &middot; request id <code>{rid}</code></p>
{footer}
</main></body></html>
"#,
            title = text(self.kind.title()),
            explanation = text(self.kind.explanation()),
            code = status.as_u16(),
            rid = text(request_id),
        )
    }
}

/// A `302 Found` to `location` (a same-origin path or the IdP), never cached.
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(crate::empty_body());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_operator_and_idp_text() {
        let cfg = Pages {
            support_url: Some("https://help.example/\"><script>".into()),
            footer: Some("<b>ACME</b>".into()),
        };
        let page = Page::new(PageKind::LoginFailed).with_detail("<img src=x onerror=alert(1)>");
        let html = page.html(&cfg, "rid123", "n");
        assert!(!html.contains("<img"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;b&gt;ACME&lt;/b&gt;"));
        assert!(html.contains("rid123"));
    }

    #[test]
    fn json_twin_names_login_url() {
        let page = Page::new(PageKind::LoginRequired).with_login_url("/.portcullis/login?rd=%2Fx");
        let v: serde_json::Value = serde_json::from_str(&page.json("r1")).unwrap();
        assert_eq!(v["error"], "login_required");
        assert_eq!(v["login_url"], "/.portcullis/login?rd=%2Fx");
        assert_eq!(v["request_id"], "r1");
    }
}
