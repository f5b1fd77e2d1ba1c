//! SCIM 2.0 provisioning (RFC 7643/7644) under `/.portcullis/scim/v2/`:
//! how Okta and Entra ID tell Portcullis that someone was deactivated,
//! deleted or removed from a group, so their sessions end now rather than
//! when their cookie expires. Portcullis keeps only what that needs
//! ([`directory`]); the consequences for sessions are in [`deprovision`].
//!
//! Every call needs `Authorization: Bearer TOKEN` with a token from
//! `scim.tokens` (hashed, compared in constant time by `policy::tokens`);
//! without it the answer is 401 and nothing is read or changed. SCIM is
//! off without a `scim:` section. The file work runs on the blocking pool.

pub mod deprovision;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod patch;
pub mod query;
pub mod resource;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::Body;
use crate::config::Config;
use crate::config::scim::Scim;
use crate::request_ctx::RequestCtx;
use crate::revocation::Revocations;

use directory::{Directory, Group, User};
use error::ScimError;
use query::{ListQuery, Matches, Projection};
use resource::{GroupInput, LIST_SCHEMA, UserInput};

/// Where the endpoints live, below the reserved prefix.
pub const PATH: &str = "scim/v2";

/// A request body larger than this is refused unread (a group PATCH with
/// a few thousand members is still far below).
const MAX_BODY_BYTES: usize = 1024 * 1024;

const CONTENT_TYPE: &str = "application/scim+json";

/// One SCIM call, read and authenticated, ready for the blocking pool.
struct Call {
    method: Method,
    /// The path below `/.portcullis/scim/v2/`, split at `/`.
    segments: Vec<String>,
    query: Option<String>,
    body: Bytes,
    /// `scim:TOKEN_NAME`: who asked, for the audit log and revocations.
    by: String,
    base: String,
    file: std::path::PathBuf,
    watched: deprovision::Watched,
    request_id: String,
    peer: std::net::IpAddr,
    peer_trusted: bool,
    client_ip: std::net::IpAddr,
}

/// What a call answers when it succeeds.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    location: Option<String>,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: Some(body),
            location: None,
        }
    }
}

fn respond(status: StatusCode, body: Option<&Value>) -> Response<Body> {
    let bytes = body
        .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
        .unwrap_or_default();
    let mut resp = Response::new(crate::full_body(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if body.is_some() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error_response(e: &ScimError) -> Response<Body> {
    let mut resp = respond(e.status(), Some(&e.body()));
    if matches!(e, ScimError::Unauthorized) {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis-scim\""),
        );
    }
    resp
}

/// Answers `/.portcullis/scim/v2/{rest}`; `settings` is `config.scim`.
pub async fn answer(
    config: &Config,
    settings: &Scim,
    revocations: &Arc<Revocations>,
    rest: &str,
    req: Request<Incoming>,
    ctx: RequestCtx<'_>,
) -> Response<Body> {
    let Some(token) = crate::policy::tokens::in_authorization(&settings.tokens, req.headers())
    else {
        crate::audit::scim_refused(ctx, "no valid bearer token");
        return error_response(&ScimError::Unauthorized);
    };
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let call = Call {
        method,
        segments: rest.split('/').map(str::to_string).collect(),
        query,
        body,
        by: format!("scim:{}", token.name),
        base: format!("{}{}{PATH}", config.public_origin(), crate::RESERVED_PREFIX),
        file: settings.file.clone(),
        watched: deprovision::Watched {
            access: config.access.named_groups().cloned().collect(),
            roles: config.roles.named_groups().cloned().collect(),
        },
        request_id: ctx.request_id.to_string(),
        peer: ctx.peer,
        peer_trusted: ctx.peer_trusted,
        client_ip: ctx.client_ip,
    };
    let revocations = revocations.clone();
    let done = tokio::task::spawn_blocking(move || {
        let out = handle(&call, &revocations);
        let ctx = RequestCtx {
            request_id: &call.request_id,
            peer: call.peer,
            peer_trusted: call.peer_trusted,
            client_ip: call.client_ip,
        };
        let what = format!("{} /{}", call.method, call.segments.join("/"));
        match &out {
            Ok(a) => crate::audit::scim_call(ctx, &call.by, &what, a.status.as_u16()),
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::error!(error = %e, "a SCIM call failed");
                }
                crate::audit::scim_call(ctx, &call.by, &what, e.status().as_u16());
            }
        }
        out
    })
    .await;
    match done {
        Ok(Ok(a)) => {
            let mut resp = respond(a.status, a.body.as_ref());
            if let Some(l) = a.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                resp.headers_mut().insert(header::LOCATION, l);
            }
            resp
        }
        Ok(Err(e)) => error_response(&e),
        Err(_) => error_response(&ScimError::NotImplemented(
            "the SCIM call was interrupted; try again".into(),
        )),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ScimError> {
    Ok(Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ScimError::TooLarge(MAX_BODY_BYTES)
            } else {
                ScimError::InvalidSyntax("the request body could not be read".into())
            }
        })?
        .to_bytes())
}

fn not_found(kind: &str, id: &str) -> ScimError {
    ScimError::NotFound(format!(
        "no {kind} with id `{id}`; list them with GET /{kind}s"
    ))
}

fn method_not_allowed(method: &Method, allowed: &str) -> ScimError {
    ScimError::MethodNotAllowed(format!("{method} is not supported here; use {allowed}"))
}

fn handle(call: &Call, revocations: &Revocations) -> Result<Answer, ScimError> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let m = &call.method;
    match segs.as_slice() {
        ["ServiceProviderConfig"] if m == Method::GET => {
            Ok(Answer::ok(discovery::service_provider_config(&call.base)))
        }
        ["ResourceTypes"] if m == Method::GET => Ok(Answer::ok(discovery::list(
            &discovery::resource_types(&call.base),
        ))),
        ["ResourceTypes", name] if m == Method::GET => discovery::resource_types(&call.base)
            .into_iter()
            .find(|r| r["id"] == *name)
            .map(Answer::ok)
            .ok_or_else(|| not_found("ResourceType", name)),
        ["Schemas"] if m == Method::GET => {
            Ok(Answer::ok(discovery::list(&discovery::schemas(&call.base))))
        }
        ["Schemas", id] if m == Method::GET => discovery::schemas(&call.base)
            .into_iter()
            .find(|s| s["id"] == *id)
            .map(Answer::ok)
            .ok_or_else(|| not_found("Schema", id)),
        ["ServiceProviderConfig" | "ResourceTypes" | "Schemas", ..] => {
            Err(method_not_allowed(m, "GET"))
        }
        ["Users"] => match *m {
            Method::GET => list_users(call),
            Method::POST => create_user(call, revocations),
            _ => Err(method_not_allowed(m, "GET or POST")),
        },
        ["Groups"] => match *m {
            Method::GET => list_groups(call),
            Method::POST => create_group(call, revocations),
            _ => Err(method_not_allowed(m, "GET or POST")),
        },
        [".search"] | ["Users" | "Groups", ".search"] => Err(ScimError::NotImplemented(
            "POST .search is not supported; use GET with `filter`".into(),
        )),
        ["Users", id] => match *m {
            Method::GET => get_user(call, id),
            Method::PUT | Method::PATCH | Method::DELETE => change_user(call, id, revocations),
            _ => Err(method_not_allowed(m, "GET, PUT, PATCH or DELETE")),
        },
        ["Groups", id] => match *m {
            Method::GET => get_group(call, id),
            Method::PUT | Method::PATCH | Method::DELETE => change_group(call, id, revocations),
            _ => Err(method_not_allowed(m, "GET, PUT, PATCH or DELETE")),
        },
        _ => Err(ScimError::NotFound(format!(
            "`/{}` is not a SCIM endpoint of Portcullis; it serves /Users, /Groups, /ServiceProviderConfig, /ResourceTypes and /Schemas",
            call.segments.join("/")
        ))),
    }
}

/// The request body as JSON, read once the route is known (so a wrong
/// method is a 405 whatever the body).
fn body(call: &Call) -> Result<Value, ScimError> {
    serde_json::from_slice(&call.body).map_err(|e| {
        ScimError::InvalidSyntax(format!(
            "the request body is not JSON ({e}); send a SCIM resource or PatchOp message"
        ))
    })
}

fn list_response(resources: &[Value], total: usize, start_index: usize) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// The page of `items` that matches the query.
fn page<'a, T: Matches>(items: &'a [T], q: &ListQuery) -> Result<(Vec<&'a T>, usize), ScimError> {
    let mut matching = Vec::new();
    for item in items {
        if q.filter
            .as_ref()
            .map(|f| item.matches(f))
            .transpose()?
            .unwrap_or(true)
        {
            matching.push(item);
        }
    }
    let total = matching.len();
    let page = matching
        .into_iter()
        .skip(q.start_index - 1)
        .take(q.count)
        .collect();
    Ok((page, total))
}

fn list_users(call: &Call) -> Result<Answer, ScimError> {
    let q = ListQuery::from_query(call.query.as_deref())?;
    let dir = Directory::load(&call.file)?;
    let (users, total) = page(&dir.users, &q)?;
    let resources: Vec<Value> = users
        .into_iter()
        .map(|u| {
            let mut v = resource::user_json(u, &call.base);
            q.projection.apply(&mut v);
            v
        })
        .collect();
    Ok(Answer::ok(list_response(&resources, total, q.start_index)))
}

fn list_groups(call: &Call) -> Result<Answer, ScimError> {
    let q = ListQuery::from_query(call.query.as_deref())?;
    let dir = Directory::load(&call.file)?;
    let (groups, total) = page(&dir.groups, &q)?;
    let resources: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let mut v = resource::group_json(g, &call.base, q.projection.wants("members"));
            q.projection.apply(&mut v);
            v
        })
        .collect();
    Ok(Answer::ok(list_response(&resources, total, q.start_index)))
}

fn get_user(call: &Call, id: &str) -> Result<Answer, ScimError> {
    let dir = Directory::load(&call.file)?;
    let u = dir.user(id).ok_or_else(|| not_found("User", id))?;
    let mut v = resource::user_json(u, &call.base);
    Projection::from_query(call.query.as_deref()).apply(&mut v);
    Ok(Answer::ok(v))
}

fn get_group(call: &Call, id: &str) -> Result<Answer, ScimError> {
    let dir = Directory::load(&call.file)?;
    let g = dir.group(id).ok_or_else(|| not_found("Group", id))?;
    let p = Projection::from_query(call.query.as_deref());
    let mut v = resource::group_json(g, &call.base, p.wants("members"));
    p.apply(&mut v);
    Ok(Answer::ok(v))
}

fn taken(dir: &Directory, user_name: &str, except_id: &str) -> Result<(), ScimError> {
    match dir.user_named(user_name) {
        Some(other) if other.id != except_id => Err(ScimError::Uniqueness(format!(
            "a user with userName `{user_name}` exists already (id `{}`); find it with GET /Users?filter=userName eq \"{user_name}\"",
            other.id
        ))),
        _ => Ok(()),
    }
}

fn created(location: String, body: Value) -> Answer {
    Answer {
        status: StatusCode::CREATED,
        body: Some(body),
        location: Some(location),
    }
}

fn create_user(call: &Call, revocations: &Revocations) -> Result<Answer, ScimError> {
    let input = UserInput::read(&body(call)?)?;
    let user = Directory::update(&call.file, |dir| {
        taken(dir, &input.user_name, "")?;
        let now = crate::clock::now_ms();
        let user = User {
            id: crate::random_id(16),
            user_name: input.user_name.clone(),
            external_id: input.external_id.clone(),
            active: input.active,
            display_name: input.display_name.clone(),
            created_ms: now,
            modified_ms: now,
        };
        // Provisioned already inactive: sessions from before must end too.
        revocations.add_many(&deprovision::user_change(None, Some(&user), &call.by))?;
        dir.users.push(user.clone());
        Ok::<_, ScimError>(user)
    })?;
    let v = resource::user_json(&user, &call.base);
    Ok(created(format!("{}/Users/{}", call.base, user.id), v))
}

/// A new group with members a role names may raise their roles: their
/// sessions end before the group is stored (as in [`change_user`]).
fn create_group(call: &Call, revocations: &Revocations) -> Result<Answer, ScimError> {
    let input = GroupInput::read(&body(call)?)?;
    let group = Directory::update(&call.file, |dir| {
        let now = crate::clock::now_ms();
        let group = Group {
            id: crate::random_id(16),
            display_name: input.display_name.clone(),
            external_id: input.external_id.clone(),
            members: input.members.clone(),
            created_ms: now,
            modified_ms: now,
        };
        revocations.add_many(&deprovision::group_change(
            None,
            Some(&group),
            &call.watched,
            dir,
            &call.by,
        ))?;
        dir.groups.push(group.clone());
        Ok::<_, ScimError>(group)
    })?;
    let v = resource::group_json(&group, &call.base, true);
    Ok(created(format!("{}/Groups/{}", call.base, group.id), v))
}

/// PUT, PATCH or DELETE of a user. The revocation is made before the
/// directory is written: if it fails, nothing is stored and the IdP's
/// retry finds the user still active and revokes again.
fn change_user(call: &Call, id: &str, revocations: &Revocations) -> Result<Answer, ScimError> {
    let input = match call.method {
        Method::PUT => Some(UserInput::read(&body(call)?)?),
        _ => None,
    };
    let patch = match call.method {
        Method::PATCH => Some(patch::read(&body(call)?)?),
        _ => None,
    };
    let after = Directory::update(&call.file, |dir| {
        let before = dir.user(id).cloned().ok_or_else(|| not_found("User", id))?;
        if call.method == Method::DELETE {
            revocations.add_many(&deprovision::user_change(Some(&before), None, &call.by))?;
            dir.users.retain(|u| u.id != id);
            for g in &mut dir.groups {
                g.members.retain(|m| m != id);
            }
            return Ok(None);
        }
        let mut after = before.clone();
        if let Some(input) = &input {
            after.user_name.clone_from(&input.user_name);
            after.external_id.clone_from(&input.external_id);
            after.active = input.active;
            after.display_name.clone_from(&input.display_name);
        }
        if let Some(p) = &patch {
            patch::apply_user(&mut after, p)?;
        }
        taken(dir, &after.user_name, id)?;
        if after != before {
            after.modified_ms = crate::clock::now_ms();
        }
        revocations.add_many(&deprovision::user_change(
            Some(&before),
            Some(&after),
            &call.by,
        ))?;
        if let Some(u) = dir.user_mut(id) {
            *u = after.clone();
        }
        Ok::<_, ScimError>(Some(after))
    })?;
    Ok(match after {
        Some(u) => Answer::ok(resource::user_json(&u, &call.base)),
        None => Answer {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
        },
    })
}

/// PUT, PATCH or DELETE of a group; members who leave a group that grants
/// access are revoked before the change is stored, as for users.
fn change_group(call: &Call, id: &str, revocations: &Revocations) -> Result<Answer, ScimError> {
    let input = match call.method {
        Method::PUT => Some(GroupInput::read(&body(call)?)?),
        _ => None,
    };
    let patch = match call.method {
        Method::PATCH => Some(patch::read(&body(call)?)?),
        _ => None,
    };
    let projection = Projection::from_query(call.query.as_deref());
    let out = Directory::update(&call.file, |dir| {
        let before = dir
            .group(id)
            .cloned()
            .ok_or_else(|| not_found("Group", id))?;
        let after = if call.method == Method::DELETE {
            None
        } else {
            {
                let mut after = before.clone();
                if let Some(input) = &input {
                    after.display_name.clone_from(&input.display_name);
                    after.external_id.clone_from(&input.external_id);
                    after.members.clone_from(&input.members);
                }
                if let Some(p) = &patch {
                    patch::apply_group(&mut after, p)?;
                }
                if after != before {
                    after.modified_ms = crate::clock::now_ms();
                }
                Some(after)
            }
        };
        let entries =
            deprovision::group_change(Some(&before), after.as_ref(), &call.watched, dir, &call.by);
        revocations.add_many(&entries)?;
        match &after {
            Some(a) => {
                if let Some(g) = dir.group_mut(id) {
                    *g = a.clone();
                }
            }
            None => dir.groups.retain(|g| g.id != id),
        }
        Ok::<_, ScimError>(after.map(|a| {
            let mut v = resource::group_json(&a, &call.base, projection.wants("members"));
            projection.apply(&mut v);
            v
        }))
    })?;
    Ok(match out {
        Some(v) => Answer::ok(v),
        None => Answer {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
        },
    })
}
