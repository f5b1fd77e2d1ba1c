//! Audit events for the SIEM: one structured line per security decision,
//! under the `audit` target. Each carries the request id, client address and
//! user where known. Never a secret, token, cookie or IdP payload: callers
//! pass names and reasons only.

use crate::request_ctx::RequestCtx;

/// `groups`: how many groups the session keeps; `groups_dropped`: how many
/// `session.groups` left out.
pub fn login_succeeded(
    ctx: RequestCtx<'_>,
    user: &str,
    idp: &str,
    groups: usize,
    groups_dropped: usize,
    role: Option<&str>,
) {
    tracing::info!(target: "audit", event = "login_succeeded", request_id = ctx.request_id, client_ip = %ctx.client_ip, user, idp, groups, groups_dropped, role = role.unwrap_or("-"));
}

/// A form POST without a session: its fields (counted, never logged) are
/// kept in the browser while the user signs in again.
pub fn form_kept(ctx: RequestCtx<'_>, fields: usize) {
    tracing::info!(target: "audit", event = "form_kept", request_id = ctx.request_id, client_ip = %ctx.client_ip, fields);
}

pub fn form_not_kept(ctx: RequestCtx<'_>, reason: &str) {
    tracing::info!(target: "audit", event = "form_not_kept", request_id = ctx.request_id, client_ip = %ctx.client_ip, reason);
}

pub fn login_failed(ctx: RequestCtx<'_>, reason: &str) {
    tracing::warn!(target: "audit", event = "login_failed", request_id = ctx.request_id, client_ip = %ctx.client_ip, reason);
}

pub fn login_started(ctx: RequestCtx<'_>, idp: &str) {
    tracing::info!(target: "audit", event = "login_started", request_id = ctx.request_id, client_ip = %ctx.client_ip, idp);
}

pub fn login_loop(ctx: RequestCtx<'_>, attempts: u32) {
    tracing::warn!(target: "audit", event = "login_loop", request_id = ctx.request_id, client_ip = %ctx.client_ip, attempts);
}

/// `rule`: which check refused; `access_rule`: which rule it belongs to
/// (`default`, `rules[N]`, `none`) and `access_rule_description` its
/// operator-given description.
pub fn access_denied(ctx: RequestCtx<'_>, user: Option<&str>, denial: &crate::policy::Denial) {
    tracing::warn!(target: "audit", event = "access_denied", request_id = ctx.request_id, client_ip = %ctx.client_ip, user = user.unwrap_or("-"), rule = denial.why.rule(), access_rule = %denial.rule, access_rule_description = denial.description.as_deref().unwrap_or("-"));
}

/// A valid session on a path whose rule asks for a sign-in at most
/// `max_auth_age_secs` old, and the session's is older (or unknown): sent
/// back to the IdP for a fresh one.
pub fn reauth_required(ctx: RequestCtx<'_>, user: &str, max_auth_age_secs: u64) {
    tracing::info!(target: "audit", event = "reauth_required", request_id = ctx.request_id, client_ip = %ctx.client_ip, user, max_auth_age_secs);
}

pub fn session_rejected(ctx: RequestCtx<'_>, reason: &str) {
    tracing::info!(target: "audit", event = "session_rejected", request_id = ctx.request_id, client_ip = %ctx.client_ip, reason);
}

pub fn token_used(ctx: RequestCtx<'_>, token_name: &str) {
    tracing::info!(target: "audit", event = "token_used", request_id = ctx.request_id, client_ip = %ctx.client_ip, token_name);
}

pub fn logout(ctx: RequestCtx<'_>, user: Option<&str>) {
    tracing::info!(target: "audit", event = "logout", request_id = ctx.request_id, client_ip = %ctx.client_ip, user = user.unwrap_or("-"));
}

/// A request the gate refused to judge for the app (ambiguous path, other
/// host, tunnel, unbelievable forward-auth question).
pub fn request_refused(ctx: RequestCtx<'_>, reason: &str) {
    tracing::warn!(target: "audit", event = "request_refused", request_id = ctx.request_id, client_ip = %ctx.client_ip, reason);
}

/// `assertion.enabled` and the identity assertion for `user` could not be
/// signed with key `kid`: the request was refused, not forwarded.
pub fn assertion_failed(ctx: RequestCtx<'_>, user: &str, kid: &str) {
    tracing::error!(target: "audit", event = "assertion_failed", request_id = ctx.request_id, client_ip = %ctx.client_ip, user, kid);
}

/// A long-lived connection (`connection`: `websocket` or `stream`) was
/// closed because its session ended (`reason`: `revoked` or `expired`).
pub fn long_lived_closed(ctx: RequestCtx<'_>, user: &str, connection: &str, reason: &str) {
    tracing::warn!(target: "audit", event = "connection_closed", request_id = ctx.request_id, client_ip = %ctx.client_ip, user, connection, reason);
}

/// A revocation came into force on this instance: `source` (cli, …),
/// what it matches (`kind`, `value`: a user name, subject or session id,
/// never a token) and who asked.
pub fn revoked(source: &str, kind: &str, value: &str, by: &str, revoked_at_ms: u64) {
    tracing::warn!(target: "audit", event = "revoked", source, kind, value, by, revoked_at_ms);
}

/// A SCIM call was refused before anything was read (no or a wrong
/// bearer token).
pub fn scim_refused(ctx: RequestCtx<'_>, reason: &str) {
    tracing::warn!(target: "audit", event = "scim_refused", request_id = ctx.request_id, client_ip = %ctx.client_ip, reason);
}

/// An authenticated SCIM call (`what`: method and path, never a body) and
/// its status; the sessions it ended are `revoked` events.
pub fn scim_call(ctx: RequestCtx<'_>, by: &str, what: &str, status: u16) {
    tracing::info!(target: "audit", event = "scim_call", request_id = ctx.request_id, client_ip = %ctx.client_ip, by, what, status);
}

/// An IdP-initiated logout: `outcome` is `ended`, `no_session`, `ignored`
/// (the request named somebody else) or `refused` (it failed a check).
pub fn idp_logout(ctx: RequestCtx<'_>, user: Option<&str>, outcome: &str, reason: &str) {
    tracing::info!(target: "audit", event = "idp_logout", request_id = ctx.request_id, client_ip = %ctx.client_ip, user = user.unwrap_or("-"), outcome, reason);
}
