//! What a SCIM client learns before it provisions (RFC 7644 §4,
//! RFC 7643 §5–7): `ServiceProviderConfig`, `ResourceTypes` and `Schemas`,
//! describing exactly the attributes Portcullis keeps.

use serde_json::{Value, json};

use super::query::MAX_RESULTS;
use super::resource::{GROUP_SCHEMA, LIST_SCHEMA, USER_SCHEMA};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A static bearer token whose SHA-256 is in `scim.tokens`",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

fn resource_type(base: &str, name: &str, endpoint: &str, schema: &str) -> Value {
    json!({
        "schemas": [RT_SCHEMA],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "description": format!("{name}s, as far as Portcullis needs them to end sessions"),
        "schema": schema,
        "schemaExtensions": [],
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{name}"),
        },
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        resource_type(base, "User", "/Users", USER_SCHEMA),
        resource_type(base, "Group", "/Groups", GROUP_SCHEMA),
    ]
}

fn attribute(name: &str, kind: &str, required: bool, case_exact: bool, uniqueness: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": name,
        "required": required,
        "caseExact": case_exact,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": uniqueness,
    })
}

pub fn schemas(base: &str) -> Vec<Value> {
    let meta = |id: &str| {
        json!({
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{id}"),
        })
    };
    let user = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User Account",
        "attributes": [
            attribute("userName", "string", true, false, "server"),
            attribute("displayName", "string", false, false, "none"),
            attribute("active", "boolean", false, false, "none"),
        ],
        "meta": meta(USER_SCHEMA),
    });
    let group = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "Group",
        "attributes": [
            attribute("displayName", "string", true, false, "none"),
            {
                "name": "members",
                "type": "complex",
                "multiValued": true,
                "description": "The group's users",
                "required": false,
                "mutability": "readWrite",
                "returned": "default",
                "uniqueness": "none",
                "subAttributes": [
                    {
                        "name": "value",
                        "type": "string",
                        "multiValued": false,
                        "description": "The member's id",
                        "required": false,
                        "caseExact": true,
                        "mutability": "immutable",
                        "returned": "default",
                        "uniqueness": "none",
                    },
                    {
                        "name": "$ref",
                        "type": "reference",
                        "referenceTypes": ["User"],
                        "multiValued": false,
                        "description": "The member's URI",
                        "required": false,
                        "caseExact": true,
                        "mutability": "immutable",
                        "returned": "default",
                        "uniqueness": "none",
                    },
                    {
                        "name": "type",
                        "type": "string",
                        "canonicalValues": ["User"],
                        "multiValued": false,
                        "description": "Always User",
                        "required": false,
                        "caseExact": false,
                        "mutability": "immutable",
                        "returned": "default",
                        "uniqueness": "none",
                    },
                ],
            },
        ],
        "meta": meta(GROUP_SCHEMA),
    });
    vec![user, group]
}

/// A ListResponse of everything (discovery lists are never paged).
pub fn list(resources: &[Value]) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
