#!/usr/bin/env python3
"""Verify a Portcullis identity assertion the way an app should.

Usage: verify.py JWKS_URL ISSUER AUDIENCE < assertion

JWKS_URL is https://DOMAIN/.portcullis/jwks.json (or Portcullis' own
listener, which the app can reach without the public name), ISSUER is
https://DOMAIN, AUDIENCE is `assertion.audience` (by default the domain).
The assertion is the value of the X-Portcullis-Assertion request header.

Prints the verified claims as JSON and exits 0, or prints why the
assertion was refused and exits 1. Needs PyJWT with cryptography
(Debian: python3-jwt python3-cryptography; pip: pyjwt[crypto]).

In an app, do the same per request: keep one PyJWKClient (it caches the
key set and fetches it again for an unknown key id) and call
jwt.decode with the algorithms, issuer and audience pinned.
"""

import json
import sys

import jwt

# The algorithms Portcullis signs with; never let the token choose.
ALGORITHMS = ["ES256", "EdDSA", "RS256"]


def verify(client, token, issuer, audience, leeway=30):
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=ALGORITHMS,
        issuer=issuer,
        audience=audience,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        leeway=leeway,
    )


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    jwks_url, issuer, audience = sys.argv[1:]
    token = sys.stdin.read().strip()
    client = jwt.PyJWKClient(jwks_url)
    try:
        claims = verify(client, token, issuer, audience)
    except jwt.PyJWTError as e:
        print(f"refused: {type(e).__name__}: {e}")
        return 1
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
