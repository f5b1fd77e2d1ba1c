"""Drives Portcullis' SCIM endpoints with scim2-client, the way an IdP's
provisioning does, and runs the scim2-tester conformance checks.

Usage: client.py BASE_URL TOKEN COMMAND [ARGS...]; prints one JSON
document on stdout for the Rust test (tests/scim.rs) to assert on.
"""

import json
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Group, GroupMember, PatchOp, PatchOperation, SearchRequest, User


def client(base, token):
    http = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    scim = SyncSCIMClient(http)
    # Reads ServiceProviderConfig, ResourceTypes and Schemas, as a real
    # client would before it provisions.
    scim.discover()
    return scim


def dump(resource):
    return resource.model_dump(mode="json", by_alias=True, exclude_none=True)


def patch(model, *operations):
    return PatchOp[model](operations=[PatchOperation[model](**o) for o in operations])


def main(base, token, command, *args):
    if command == "conformance":
        from scim2_tester import check_server

        results = check_server(client(base, token))
        return [
            {"title": r.title, "status": r.status.name, "reason": r.reason}
            for r in results
        ]
    scim = client(base, token)
    if command == "create-user":
        (user_name,) = args
        return dump(scim.create(User(user_name=user_name, display_name=user_name, active=True)))
    if command == "find-user":
        (user_name,) = args
        found = scim.query(User, query_parameters=SearchRequest(filter=f'userName eq "{user_name}"'))
        return {"totalResults": found.total_results, "ids": [u.id for u in found.resources or []]}
    if command == "rename-display":
        user_id, display = args
        return dump(scim.modify(User, user_id, patch(User, {"op": "replace", "path": "displayName", "value": display})))
    if command == "deactivate":
        (user_id,) = args
        # Okta's form: no path, a value object.
        return dump(scim.modify(User, user_id, patch(User, {"op": "replace", "value": {"active": False}})))
    if command == "replace-inactive":
        (user_id,) = args
        user = scim.query(User, user_id)
        user.active = False
        return dump(scim.replace(user))
    if command == "delete":
        kind, resource_id = args
        scim.delete(User if kind == "User" else Group, resource_id)
        return {"deleted": resource_id}
    if command == "create-group":
        name, *members = args
        group = Group(display_name=name, members=[GroupMember(value=m) for m in members])
        return dump(scim.create(group))
    if command == "remove-member":
        group_id, user_id = args
        result = scim.modify(
            Group, group_id, patch(Group, {"op": "remove", "path": f'members[value eq "{user_id}"]'})
        )
        return dump(result) if result is not None else {}
    if command == "add-member":
        group_id, user_id = args
        result = scim.modify(
            Group, group_id, patch(Group, {"op": "add", "path": "members", "value": [{"value": user_id}]})
        )
        return dump(result) if result is not None else {}
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
