//! OpenID Connect login: Authorization Code flow with PKCE (S256), state
//! and nonce bound to the signed transaction cookie, ID token checked
//! (signature with the allowed algorithms only, iss, aud, azp, exp, iat with
//! bounded skew, nonce), claims mapped to an [`Identity`].

pub mod backchannel;
mod callback_error;
pub mod claims;
pub mod provider;

use std::sync::Arc;

use http::{Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreResponseType};
use openidconnect::{
    AuthType, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, SubjectIdentifier,
};
use serde_json::Value;

use super::{Completed, EndpointOutcome, LoginCtx};
use crate::Body;
use crate::config::Config;
use crate::config::oidc::{Oidc, ResponseMode, TokenEndpointAuth};
use crate::identity::IdpKind;
use crate::pages::{Page, PageKind};
use crate::session::{LoginFlow, LoginRefs};
pub use callback_error::CallbackError;
use provider::{ExtraClaims, Metadata, OidcClient, Provider, ProviderError};

type IdToken = openidconnect::IdToken<
    ExtraClaims,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The callback path under the reserved prefix.
pub const CALLBACK: &str = "oidc/callback";
/// Form posts (`response_mode: form_post`) are small; refuse anything big.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub struct OidcLogin {
    cfg: Oidc,
    provider: Arc<Provider>,
    redirect_uri: RedirectUrl,
    post_logout_uri: String,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    /// How old an ID token's `iat` may be: it must come from this login.
    max_token_age: chrono::Duration,
    /// The `jti`s of back-channel logout tokens already used.
    logout_tokens: backchannel::Replay,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcSetupError {
    #[error("oidc: {0}")]
    Provider(#[from] ProviderError),
    #[error("oidc.allowed_algorithms: `{0}` is not supported")]
    Algorithm(String),
    #[error("oidc: the redirect URI {0} is not a valid URL; check `domain` and `scheme`")]
    RedirectUri(String),
}

impl OidcLogin {
    /// Sets up the flow and loads the provider (from the network, else the
    /// cache). A provider that is down with nothing cached is not fatal:
    /// existing sessions keep working and logins show the 503 page until
    /// the background refresh reaches it.
    pub async fn new(config: &Config, cfg: Oidc) -> Result<OidcLogin, OidcSetupError> {
        let algorithms = cfg
            .allowed_algorithms
            .iter()
            .map(|a| {
                serde_json::from_value::<CoreJwsSigningAlgorithm>(Value::String(a.clone()))
                    .map_err(|_| OidcSetupError::Algorithm(a.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let origin = config.public_origin();
        let redirect = format!("{origin}{}{CALLBACK}", crate::RESERVED_PREFIX);
        let redirect_uri = RedirectUrl::new(redirect.clone())
            .map_err(|_| OidcSetupError::RedirectUri(redirect))?;
        let provider = Arc::new(Provider::new(cfg.clone(), &config.state_dir)?);
        if let Err(e) = provider.load().await {
            tracing::error!(error = %e, "OpenID provider not loaded; logins fail with 503 until it is reachable");
        }
        provider.spawn_refresh();
        let max_token_age =
            chrono::Duration::from_std(config.login.transaction_lifetime + cfg.clock_skew)
                .unwrap_or(chrono::Duration::minutes(15));
        Ok(OidcLogin {
            post_logout_uri: format!("{origin}{}signed-out", crate::RESERVED_PREFIX),
            cfg,
            provider,
            redirect_uri,
            algorithms,
            max_token_age,
            logout_tokens: backchannel::Replay::default(),
        })
    }

    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    fn client(&self, metadata: &Metadata) -> OidcClient {
        OidcClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.cfg.client_id.clone()),
            self.cfg.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect_uri.clone())
        .set_auth_type(match self.cfg.token_endpoint_auth {
            TokenEndpointAuth::ClientSecretBasic => AuthType::BasicAuth,
            TokenEndpointAuth::ClientSecretPost => AuthType::RequestBody,
        })
    }

    pub async fn start(
        &self,
        ctx: LoginCtx<'_>,
        return_to: &str,
        fresh: Option<std::time::Duration>,
    ) -> Result<http::Response<Body>, Page> {
        let loaded = self.provider.ensure_reachable().await.map_err(|e| {
            tracing::warn!(request_id = ctx.request.request_id, error = %e, "OpenID provider unreachable at login start");
            Page::new(PageKind::IdpUnavailable)
        })?;
        let client = self.client(&loaded.metadata);
        let nonce = Nonce::new_random();
        let pkce = self.cfg.pkce.then(PkceCodeChallenge::new_random_sha256);
        let flow = LoginFlow::Oidc {
            nonce: nonce.secret().clone(),
            pkce_verifier: pkce.as_ref().map(|(_, v)| v.secret().clone()),
        };
        let (txn, cookie) = ctx
            .transactions
            .begin(return_to, flow)
            .map_err(|_| Page::new(PageKind::LoginFailed))?;
        let state = txn.id.clone();
        let mut request = client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            move || CsrfToken::new(state),
            move || nonce,
        );
        for scope in self.cfg.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some((challenge, _)) = pkce {
            request = request.set_pkce_challenge(challenge);
        }
        for (k, v) in &self.cfg.extra_auth_params {
            // A fresh sign-in asked for below must not be watered down.
            if fresh.is_some() && matches!(k.as_str(), "prompt" | "max_age") {
                continue;
            }
            request = request.add_extra_param(k.clone(), v.clone());
        }
        if let Some(max_age) = fresh {
            // OpenID Connect Core §3.1.2.1: `max_age` makes `auth_time`
            // mandatory in the ID token, which the callback checks.
            request = request
                .add_prompt(openidconnect::core::CoreAuthPrompt::Login)
                .add_extra_param("max_age", max_age.as_secs().to_string());
        }
        if self.cfg.response_mode == ResponseMode::FormPost {
            request = request.add_extra_param("response_mode", "form_post");
        }
        let (url, _, _) = request.url();
        let mut resp = crate::pages::redirect(url.as_str());
        if let Ok(v) = http::HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(http::header::SET_COOKIE, v);
        }
        Ok(resp)
    }

    pub async fn endpoint(
        &self,
        rest: &str,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
    ) -> Option<EndpointOutcome> {
        match rest {
            CALLBACK => Some(self.callback(ctx, req).await),
            backchannel::PATH => Some(EndpointOutcome::Respond(
                self.backchannel_logout(ctx, req).await,
            )),
            _ => None,
        }
    }

    /// Back-channel logout from the provider ([`backchannel`]): no session
    /// and no transaction, the signed logout token is the credential.
    async fn backchannel_logout(
        &self,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
    ) -> http::Response<Body> {
        backchannel::Endpoint {
            expect: backchannel::Expect {
                issuer: &self.cfg.issuer,
                client_id: &self.cfg.client_id,
                algorithms: &self.algorithms,
                skew: self.cfg.clock_skew,
            },
            provider: &self.provider,
            replay: &self.logout_tokens,
            revocations: ctx.sessions.revocations(),
            audit: ctx.request,
        }
        .answer(req)
        .await
    }

    async fn callback(&self, ctx: LoginCtx<'_>, req: Request<Incoming>) -> EndpointOutcome {
        // `Set-Cookie` values that clear the login transaction, once found:
        // sent whether the login completes or not.
        let mut clear = Vec::new();
        match self.complete(ctx, req, &mut clear).await {
            Ok(done) => EndpointOutcome::LoggedIn(Box::new(done)),
            Err(e) => {
                let mut page = Page::new(e.page_kind());
                page.detail = e.user_detail();
                EndpointOutcome::Failed {
                    page,
                    reason: e.to_string(),
                    set_cookies: clear,
                }
            }
        }
    }

    /// The callback's checks, in order: the transaction named by `state`
    /// first (an answer no login of this browser asked for is refused,
    /// whatever it says), the provider's error, the code exchange with
    /// the PKCE verifier, the ID token (nonce from the transaction), the
    /// optional userinfo, the claim mapping and the email domains.
    async fn complete(
        &self,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
        clear: &mut Vec<String>,
    ) -> Result<Completed, CallbackError> {
        let params = read_params(req).await?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());

        let txn = ctx
            .transactions
            .find(ctx.request_cookies, get("state").unwrap_or(""))
            .map_err(CallbackError::Transaction)?;
        let LoginFlow::Oidc {
            nonce,
            pkce_verifier,
        } = txn.flow
        else {
            return Err(CallbackError::OtherLoginKind);
        };
        clear.push(ctx.transactions.clear(&txn.id));

        if let Some(error) = get("error") {
            if let Some(fix) = super::diagnose::authorization_error(error) {
                return Err(CallbackError::Misconfigured {
                    what: format!("provider returned error `{}`", truncate(error)),
                    fix: fix.to_string(),
                });
            }
            return Err(CallbackError::Provider {
                error: truncate(error),
                description: get("error_description").unwrap_or(error).to_string(),
            });
        }
        let code = get("code").ok_or(CallbackError::NoCode)?;
        // Never compare against an empty nonce: a token with `nonce: ""`
        // would match it.
        if nonce.is_empty() {
            return Err(CallbackError::NoNonce);
        }
        let nonce = Nonce::new(nonce);
        let loaded = self
            .provider
            .current()
            .ok_or(CallbackError::ProviderNotLoaded)?;
        let mut client = self.client(&loaded.metadata);
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| CallbackError::NoTokenEndpoint(e.to_string()))?;
        let exchange = match pkce_verifier {
            Some(v) => exchange.set_pkce_verifier(PkceCodeVerifier::new(v)),
            None => exchange,
        };
        let token = exchange
            .request_async(&self.provider.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(e) => {
                    let code = e.error().as_ref();
                    match super::diagnose::token_error(code) {
                        Some(fix) => CallbackError::Misconfigured {
                            what: format!("token endpoint refused the code: {code}"),
                            fix: fix.to_string(),
                        },
                        None => CallbackError::CodeRefused(code.to_string()),
                    }
                }
                RequestTokenError::Request(e) => {
                    CallbackError::TokenEndpointUnreachable(provider::error_chain(&e))
                }
                e => CallbackError::TokenAnswer(e.to_string()),
            })?;
        let id_token = token
            .extra_fields()
            .id_token()
            .ok_or(CallbackError::NoIdToken)?;
        let mut verified = self.verify(&client, id_token, &nonce);
        if matches!(
            verified,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            ))
        ) && self.provider.refetch_keys().await
        {
            // Key rollover at the provider: try once more with the new keys.
            if let Some(loaded) = self.provider.current() {
                client = self.client(&loaded.metadata);
                verified = self.verify(&client, id_token, &nonce);
            }
        }
        let mut claims = verified.map_err(|e| {
            let what = provider::error_chain(&e);
            match super::diagnose::id_token_error(&e, &self.cfg) {
                Some(fix) => CallbackError::Misconfigured {
                    what: format!("ID token refused: {what}"),
                    fix,
                },
                None => CallbackError::IdToken(what),
            }
        })?;
        if self.cfg.userinfo {
            let subject = claims
                .get("sub")
                .and_then(Value::as_str)
                .map(|s| SubjectIdentifier::new(s.to_string()));
            let request = client
                .user_info(token.access_token().clone(), subject)
                .map_err(|e| CallbackError::NoUserinfoEndpoint(e.to_string()))?;
            let info: Result<
                openidconnect::UserInfoClaims<ExtraClaims, openidconnect::core::CoreGenderClaim>,
                _,
            > = request.request_async(&self.provider.http).await;
            let info = info.map_err(|e| CallbackError::Userinfo(provider::error_chain(&e)))?;
            claims::merge_missing(
                &mut claims,
                serde_json::to_value(info).unwrap_or(Value::Null),
            );
        }
        if !self.cfg.allow_unverified_email {
            claims::distrust_unverified_email(&mut claims);
        }
        if claims::groups_overage(&claims, &self.cfg.claims) {
            return Err(CallbackError::GroupOverage);
        }
        let identity =
            claims::identity(&claims, &self.cfg.claims).ok_or(CallbackError::NoUserName)?;
        if !self.cfg.allowed_email_domains.is_empty() {
            let domain = identity
                .email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase());
            if !domain.is_some_and(|d| self.cfg.allowed_email_domains.contains(&d)) {
                return Err(CallbackError::EmailDomain);
            }
        }
        Ok(Completed {
            identity,
            idp: IdpKind::Oidc,
            return_to: txn.return_to,
            set_cookies: std::mem::take(clear),
            refs: LoginRefs {
                // The OP's session: what a back-channel logout may name.
                idp_sid: claims
                    .get("sid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                idp_auth_time: claims::auth_time(&claims),
                ..Default::default()
            },
            // Only kept where logout will send it: it carries the user's claims.
            id_token_hint: self.cfg.logout_at_provider.then(|| id_token.to_string()),
        })
    }

    /// Signature (allowed algorithms only), iss, aud, exp and iat with the
    /// skew, nonce — then azp, which the crate leaves to its users.
    fn verify(
        &self,
        client: &OidcClient,
        token: &IdToken,
        nonce: &Nonce,
    ) -> Result<Value, ClaimsVerificationError> {
        let skew = chrono::Duration::from_std(self.cfg.clock_skew)
            .unwrap_or(chrono::Duration::seconds(60));
        let max_age = self.max_token_age;
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(self.algorithms.clone())
            .set_time_fn(move || chrono::Utc::now() - skew)
            .set_issue_time_verifier_fn(move |iat| {
                let now = chrono::Utc::now();
                if iat > now + skew {
                    Err(format!("issued in the future ({iat})"))
                } else if iat < now - max_age {
                    Err(format!("issued too long ago ({iat})"))
                } else {
                    Ok(())
                }
            });
        let claims = token.claims(&verifier, nonce)?;
        let audiences = claims.audiences();
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != self.cfg.client_id => {
                return Err(ClaimsVerificationError::InvalidAudience(format!(
                    "azp `{}` is not this client",
                    azp.as_str()
                )));
            }
            None if audiences.len() > 1 => {
                return Err(ClaimsVerificationError::InvalidAudience(
                    "several audiences and no azp".into(),
                ));
            }
            _ => {}
        }
        serde_json::to_value(claims).map_err(|e| ClaimsVerificationError::Other(e.to_string()))
    }

    /// ID-token validation exactly as the callback runs it (parse, signature
    /// with the allowed algorithms, iss, aud, exp, iat, nonce, azp), against
    /// `metadata` and its keys instead of the provider's: for benchmarks.
    #[doc(hidden)]
    pub fn verify_id_token(
        &self,
        metadata: &Metadata,
        id_token: &str,
        nonce: &str,
    ) -> Result<Value, String> {
        let token: IdToken = id_token.parse().map_err(|e| format!("{e}"))?;
        self.verify(&self.client(metadata), &token, &Nonce::new(nonce.into()))
            .map_err(|e| provider::error_chain(&e))
    }

    /// RP-initiated logout at the provider, when it offers one, with the
    /// session's ID token as `id_token_hint` when the browser kept it.
    pub fn logout_redirect(&self, id_token_hint: Option<&str>) -> Option<String> {
        if !self.cfg.logout_at_provider {
            return None;
        }
        let loaded = self.provider.current()?;
        // An explicitly configured endpoint wins over discovery.
        let end = match &self.cfg.end_session_endpoint {
            Some(u) => openidconnect::EndSessionUrl::from_url(u.clone()),
            None => loaded
                .metadata
                .additional_metadata()
                .end_session_endpoint
                .clone()?,
        };
        let uri = PostLogoutRedirectUrl::new(self.post_logout_uri.clone()).ok()?;
        let mut request = LogoutRequest::from(end)
            .set_client_id(ClientId::new(self.cfg.client_id.clone()))
            .set_post_logout_redirect_uri(uri);
        // A hint that does not parse is left out, not sent: the provider
        // would refuse the whole logout request for it.
        if let Some(token) = id_token_hint.and_then(|t| t.parse::<IdToken>().ok()) {
            request = request.set_id_token_hint(&token);
        }
        Some(request.http_get_url().to_string())
    }
}

/// Provider-chosen strings end up in logs: keep them short.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Callback parameters from the query (GET) or the form body (form_post).
async fn read_params(req: Request<Incoming>) -> Result<Vec<(String, String)>, CallbackError> {
    let parse = |bytes: &[u8]| {
        url::form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect::<Vec<_>>()
    };
    if req.method() == Method::POST {
        let body = http_body_util::Limited::new(req.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|_| CallbackError::Request("callback form too large or interrupted"))?
            .to_bytes();
        Ok(parse(&body))
    } else if req.method() == Method::GET {
        Ok(parse(req.uri().query().unwrap_or("").as_bytes()))
    } else {
        Err(CallbackError::Request("callback with an unexpected method"))
    }
}
