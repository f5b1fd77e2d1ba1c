//! List and search parameters (RFC 7644 §3.4.2): `filter` (parsed by the
//! `scim_v2` crate, evaluated here on the attributes Portcullis keeps),
//! `startIndex`, `count`, `attributes` and `excludedAttributes`.

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter, ValFilter};
use serde_json::Value;

use super::directory::{Group, User};
use super::error::ScimError;
use super::resource::{GROUP_SCHEMA, USER_SCHEMA};

/// Most resources in one list answer (`ServiceProviderConfig.filter.maxResults`).
pub const MAX_RESULTS: usize = 200;

/// Which attributes an answer carries.
#[derive(Debug, Default, Clone)]
pub struct Projection {
    /// Lower-cased top-level names; empty: the default set.
    attributes: Vec<String>,
    excluded: Vec<String>,
}

#[derive(Debug)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// 1-based.
    pub start_index: usize,
    pub count: usize,
    pub projection: Projection,
}

/// The top-level attribute a name stands for: without a schema prefix,
/// without a sub-attribute, lower case.
fn top_level(name: &str) -> String {
    let name = name.trim();
    let name = match name.rsplit_once(':') {
        Some((urn, attr)) if urn == USER_SCHEMA || urn == GROUP_SCHEMA => attr,
        _ => name,
    };
    name.split('.').next().unwrap_or(name).to_ascii_lowercase()
}

fn names(v: &str) -> Vec<String> {
    v.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(top_level)
        .collect()
}

impl Projection {
    pub fn from_query(query: Option<&str>) -> Projection {
        let mut p = Projection::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if k.eq_ignore_ascii_case("attributes") {
                p.attributes.extend(names(&v));
            } else if k.eq_ignore_ascii_case("excludedAttributes") {
                p.excluded.extend(names(&v));
            }
        }
        p
    }

    /// Whether the group's (possibly long) member list is wanted.
    pub fn wants(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if self.excluded.contains(&name) {
            return false;
        }
        self.attributes.is_empty() || self.attributes.contains(&name)
    }

    /// Drops what was not asked for; `id` and `schemas` always stay
    /// (RFC 7643 §7 "returned: always").
    pub fn apply(&self, resource: &mut Value) {
        if let Some(obj) = resource.as_object_mut() {
            obj.retain(|k, _| {
                let k = k.to_ascii_lowercase();
                k == "id" || k == "schemas" || self.wants(&k)
            });
        }
    }
}

impl ListQuery {
    pub fn from_query(query: Option<&str>) -> Result<ListQuery, ScimError> {
        let mut q = ListQuery {
            filter: None,
            start_index: 1,
            count: MAX_RESULTS,
            projection: Projection::from_query(query),
        };
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let number = |name: &str| {
                v.trim().parse::<i64>().map_err(|_| {
                    ScimError::InvalidValue(format!("`{name}` must be an integer, not `{v}`"))
                })
            };
            if k.eq_ignore_ascii_case("filter") {
                let f = v.parse::<Filter>().map_err(|e| {
                    ScimError::InvalidFilter(format!(
                        "the filter `{v}` is not a SCIM filter (RFC 7644 §3.4.2.2): {e}"
                    ))
                })?;
                q.filter = Some(f);
            } else if k.eq_ignore_ascii_case("startIndex") {
                // RFC 7644 §3.4.2.4: less than 1 is taken as 1.
                q.start_index = usize::try_from(number("startIndex")?.max(1)).unwrap_or(1);
            } else if k.eq_ignore_ascii_case("count") {
                // Negative is taken as 0; more than the maximum as the maximum.
                q.count = usize::try_from(number("count")?.max(0))
                    .unwrap_or(0)
                    .min(MAX_RESULTS);
            } else if k.eq_ignore_ascii_case("sortBy") {
                return Err(ScimError::NotImplemented(
                    "sorting is not supported (`ServiceProviderConfig.sort.supported` is false); leave out `sortBy`".into(),
                ));
            }
        }
        Ok(q)
    }
}

/// One value of an attribute as a filter sees it.
pub enum Val<'a> {
    Str { s: &'a str, case_exact: bool },
    Bool(bool),
}

/// What a filter can ask of a resource.
pub trait Filterable {
    const SCHEMA: &'static str;
    /// The values of `attr` (none when absent); an attribute Portcullis
    /// does not keep is an `invalidFilter`.
    fn values(&self, attr: &AttrPath) -> Result<Vec<Val<'_>>, ScimError>;
}

fn unknown(attr: &AttrPath, known: &str) -> ScimError {
    ScimError::InvalidFilter(format!(
        "Portcullis cannot filter on `{attr}`: it keeps only {known}"
    ))
}

fn own_schema(attr: &AttrPath, schema: &str) -> bool {
    attr.uri.as_deref().is_none_or(|u| u == schema)
}

fn s(s: &str, case_exact: bool) -> Val<'_> {
    Val::Str { s, case_exact }
}

const USER_ATTRS: &str = "`id`, `userName`, `externalId`, `displayName` and `active`";
const GROUP_ATTRS: &str = "`id`, `displayName`, `externalId` and `members`";

impl Filterable for User {
    const SCHEMA: &'static str = USER_SCHEMA;
    fn values(&self, attr: &AttrPath) -> Result<Vec<Val<'_>>, ScimError> {
        if !own_schema(attr, Self::SCHEMA) || attr.sub_attr.is_some() {
            return Err(unknown(attr, USER_ATTRS));
        }
        Ok(match attr.name.to_ascii_lowercase().as_str() {
            "id" => vec![s(&self.id, true)],
            "username" => vec![s(&self.user_name, false)],
            "externalid" => self.external_id.iter().map(|e| s(e, true)).collect(),
            "displayname" => self.display_name.iter().map(|d| s(d, false)).collect(),
            "active" => self.active.map(Val::Bool).into_iter().collect(),
            _ => return Err(unknown(attr, USER_ATTRS)),
        })
    }
}

impl Filterable for Group {
    const SCHEMA: &'static str = GROUP_SCHEMA;
    fn values(&self, attr: &AttrPath) -> Result<Vec<Val<'_>>, ScimError> {
        if !own_schema(attr, Self::SCHEMA) {
            return Err(unknown(attr, GROUP_ATTRS));
        }
        let name = attr.name.to_ascii_lowercase();
        let sub = attr.sub_attr.as_deref().map(str::to_ascii_lowercase);
        Ok(match (name.as_str(), sub.as_deref()) {
            ("id", None) => vec![s(&self.id, true)],
            ("displayname", None) => vec![s(&self.display_name, false)],
            ("externalid", None) => self.external_id.iter().map(|e| s(e, true)).collect(),
            ("members", None | Some("value")) => self.members.iter().map(|m| s(m, true)).collect(),
            _ => return Err(unknown(attr, GROUP_ATTRS)),
        })
    }
}

fn compare(v: &Val<'_>, op: &CompareOp, value: &CompValue) -> bool {
    match (v, value) {
        (Val::Str { s, case_exact }, CompValue::Str(want)) => {
            let (a, b) = if *case_exact {
                (s.to_string(), want.clone())
            } else {
                (s.to_lowercase(), want.to_lowercase())
            };
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                CompareOp::Gt => a > b,
                CompareOp::Lt => a < b,
                CompareOp::Ge => a >= b,
                CompareOp::Le => a <= b,
            }
        }
        (Val::Bool(b), CompValue::True | CompValue::False) => {
            let want = matches!(value, CompValue::True);
            match op {
                CompareOp::Eq => *b == want,
                CompareOp::Ne => *b != want,
                _ => false,
            }
        }
        _ => false,
    }
}

fn attr_exp<R: Filterable>(r: &R, e: &AttrExp) -> Result<bool, ScimError> {
    Ok(match e {
        AttrExp::Present(p) => !r.values(p)?.is_empty(),
        // `ne`: no value equals (an absent attribute equals nothing).
        AttrExp::Comparison(p, CompareOp::Ne, v) => {
            !r.values(p)?.iter().any(|x| compare(x, &CompareOp::Eq, v))
        }
        AttrExp::Comparison(p, op, v) => r.values(p)?.iter().any(|x| compare(x, op, v)),
    })
}

/// A `[...]` filter on one member: only its `value` can be asked for.
fn member_matches(id: &str, f: &ValFilter) -> Result<bool, ScimError> {
    let values = |p: &AttrPath| -> Result<Vec<Val<'_>>, ScimError> {
        if p.name.eq_ignore_ascii_case("value") && p.sub_attr.is_none() && p.uri.is_none() {
            Ok(vec![Val::Str {
                s: id,
                case_exact: true,
            }])
        } else {
            Err(ScimError::InvalidFilter(format!(
                "inside `members[...]` Portcullis can filter only on `value`, not `{p}`"
            )))
        }
    };
    Ok(match f {
        ValFilter::Attr(AttrExp::Present(p)) => !values(p)?.is_empty(),
        ValFilter::Attr(AttrExp::Comparison(p, CompareOp::Ne, v)) => {
            !values(p)?.iter().any(|x| compare(x, &CompareOp::Eq, v))
        }
        ValFilter::Attr(AttrExp::Comparison(p, op, v)) => {
            values(p)?.iter().any(|x| compare(x, op, v))
        }
        ValFilter::Not(inner) => !member_matches(id, inner)?,
        ValFilter::And(items) => {
            let mut all = true;
            for f in items.as_slice() {
                all &= member_matches(id, f)?;
            }
            all
        }
        ValFilter::Or(items) => {
            let mut any = false;
            for f in items.as_slice() {
                any |= member_matches(id, f)?;
            }
            any
        }
    })
}

/// The member ids of `group` that `f` (a `members[...]` filter) selects.
pub fn members_selected(group: &Group, f: &ValFilter) -> Result<Vec<String>, ScimError> {
    let mut out = Vec::new();
    for id in &group.members {
        if member_matches(id, f)? {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// Whether `r` matches. Every branch is evaluated, so a filter naming an
/// unknown attribute is refused whatever the data.
pub trait Matches {
    fn matches(&self, f: &Filter) -> Result<bool, ScimError>;
}

impl Matches for User {
    fn matches(&self, f: &Filter) -> Result<bool, ScimError> {
        eval(self, f, |_, vp| {
            Err(ScimError::InvalidFilter(format!(
                "Portcullis cannot filter on `{}`: users keep no multi-valued attributes",
                vp.attr
            )))
        })
    }
}

impl Matches for Group {
    fn matches(&self, f: &Filter) -> Result<bool, ScimError> {
        eval(self, f, |g, vp| {
            if vp.attr.name.eq_ignore_ascii_case("members") && vp.attr.sub_attr.is_none() {
                Ok(!members_selected(g, &vp.filter)?.is_empty())
            } else {
                Err(unknown(&vp.attr, GROUP_ATTRS))
            }
        })
    }
}

fn eval<R: Filterable>(
    r: &R,
    f: &Filter,
    value_path: impl Fn(&R, &scim_v2::filter::ValuePath) -> Result<bool, ScimError> + Copy,
) -> Result<bool, ScimError> {
    Ok(match f {
        Filter::Attr(e) => attr_exp(r, e)?,
        Filter::ValuePath(vp) => value_path(r, vp)?,
        Filter::Not(inner) => !eval(r, inner, value_path)?,
        Filter::And(items) => {
            let mut all = true;
            for f in items.as_slice() {
                all &= eval(r, f, value_path)?;
            }
            all
        }
        Filter::Or(items) => {
            let mut any = false;
            for f in items.as_slice() {
                any |= eval(r, f, value_path)?;
            }
            any
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, active: bool) -> User {
        User {
            id: format!("id-{name}"),
            user_name: name.into(),
            external_id: Some("00u1".into()),
            active: Some(active),
            display_name: None,
            created_ms: 0,
            modified_ms: 0,
        }
    }

    fn m(u: &User, f: &str) -> Result<bool, ScimError> {
        u.matches(&f.parse().unwrap())
    }

    #[test]
    fn the_lookups_okta_and_entra_make() {
        let a = user("Alice@Example.com", true);
        assert!(m(&a, r#"userName eq "alice@example.com""#).unwrap());
        assert!(!m(&a, r#"userName eq "bob@example.com""#).unwrap());
        assert!(m(&a, r#"externalId eq "00u1""#).unwrap());
        assert!(
            !m(&a, r#"externalId eq "00U1""#).unwrap(),
            "externalId is case-exact"
        );
        assert!(
            m(
                &a,
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ALICE@example.com""#
            )
            .unwrap()
        );
        assert!(m(&a, r#"active eq true and userName sw "alice""#).unwrap());
        assert!(m(&a, r"not (active eq false)").unwrap());
        assert!(m(&a, "displayName pr").is_ok_and(|b| !b));
        assert!(matches!(
            m(&a, r#"emails.value eq "x""#),
            Err(ScimError::InvalidFilter(_))
        ));
        assert!(matches!(
            m(&a, r#"userName eq "x" or title eq "y""#),
            Err(ScimError::InvalidFilter(_))
        ));
        let g = Group {
            id: "g1".into(),
            display_name: "Admins".into(),
            external_id: None,
            members: vec!["u1".into(), "u2".into()],
            created_ms: 0,
            modified_ms: 0,
        };
        let gm = |f: &str| g.matches(&f.parse().unwrap()).unwrap();
        assert!(gm(r#"displayName eq "admins""#));
        assert!(gm(r#"id eq "g1" and members eq "u2""#));
        assert!(gm(r#"members[value eq "u1"]"#));
        assert!(!gm(r#"members[value eq "u3"]"#));
    }

    #[test]
    fn paging_and_projection() {
        let q = ListQuery::from_query(Some(
            "startIndex=0&count=1000&filter=userName%20eq%20%22a%22&excludedAttributes=members",
        ))
        .unwrap();
        assert_eq!((q.start_index, q.count), (1, MAX_RESULTS));
        assert!(q.filter.is_some());
        assert!(!q.projection.wants("members"));
        assert!(q.projection.wants("displayName"));
        let e = ListQuery::from_query(Some("filter=userName%20eq")).unwrap_err();
        assert_eq!(e.scim_type(), Some("invalidFilter"));
        let p = Projection::from_query(Some(
            "attributes=userName,urn:ietf:params:scim:schemas:core:2.0:User:active",
        ));
        let mut v = serde_json::json!({"id": "1", "schemas": [], "userName": "a", "active": true, "meta": {}});
        p.apply(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"id": "1", "schemas": [], "userName": "a", "active": true})
        );
    }
}
