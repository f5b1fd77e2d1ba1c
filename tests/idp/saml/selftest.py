#!/usr/bin/env python3
"""Self-test of the local SimpleSAMLphp test IdP (standard library + openssl CLI).

Starts the IdP with start.sh on a free loopback port with three SPs, runs the
SP-initiated HTTP-Redirect -> login form -> HTTP-POST flow as alice with a
cookie jar and no JavaScript, checks the SAML Responses, exercises SSO session
reuse, a wrong password and single logout, then stops the IdP.

    python3 tests/idp/saml/selftest.py [--keep]   (--keep: leave the work dir)

Exit 0 on success; non-zero with a message naming the failed check otherwise.
Only 127.0.0.1 is ever contacted: redirects elsewhere are captured, not followed.
"""

import base64
import datetime
import html.parser
import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"

SP1 = {  # basic names, signed Response + Assertion, with SLO
    "entity_id": "https://sp.test/metadata",
    "acs_url": "https://sp.test/acs",
    "slo_url": "https://sp.test/slo",
    "sign_response": True,
    "sign_assertion": True,
    "encrypt_assertion": False,
    "attribute_name_format": "basic",
}
SP2 = {  # AD FS claim names, encrypted assertion
    "entity_id": "https://sp2.test/metadata",
    "acs_url": "https://sp2.test/acs",
    "sign_response": True,
    "sign_assertion": True,
    "encrypt_assertion": True,
    "attribute_name_format": "adfs",
}
SP3 = {  # OID names, persistent NameID, only the Assertion signed
    "entity_id": "https://sp3.test/metadata",
    "acs_url": "https://sp3.test/acs",
    "sign_response": False,
    "sign_assertion": True,
    "encrypt_assertion": False,
    "attribute_name_format": "uri",
    "nameid_format": "persistent",
}


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class ExternalRedirect(Exception):
    def __init__(self, location):
        super().__init__(location)
        self.location = location


class LoopbackOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects on 127.0.0.1 only; anything else is raised, not fetched."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        host = urllib.parse.urlsplit(newurl).hostname
        if host != "127.0.0.1":
            raise ExternalRedirect(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def new_browser():
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar), LoopbackOnlyRedirects()
    )
    return opener, jar


def fetch(opener, url, data=None):
    """GET (or POST form data) -> (final_url, status, body)."""
    check(urllib.parse.urlsplit(url).hostname == "127.0.0.1", f"refusing non-loopback URL {url}")
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=30) as r:
            return r.geturl(), r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        raise CheckFailed(f"HTTP {e.code} from {url}:\n{strip_html(text)[:2000]}") from None


def strip_html(text):
    class P(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.out = []

        def handle_data(self, d):
            if d.strip():
                self.out.append(d.strip())

    p = P()
    p.feed(text)
    return " | ".join(p.out)


class FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._cur = {"action": a.get("action", ""), "method": (a.get("method") or "get").lower(), "inputs": {}}
            self.forms.append(self._cur)
        elif tag == "input" and self._cur is not None and a.get("name"):
            self._cur["inputs"][a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def parse_forms(text):
    p = FormParser()
    p.feed(text)
    return p.forms


def find_form(forms, field):
    for f in forms:
        if field in f["inputs"]:
            return f
    return None


# --------------------------------------------------------------------------
# SAML helpers
# --------------------------------------------------------------------------

def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def redirect_encode(xml_text):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw DEFLATE
    return base64.b64encode(c.compress(xml_text.encode()) + c.flush()).decode()


def authn_request_url(sso_url, sp, relay_state):
    req_id = "_" + uuid.uuid4().hex
    xml_text = (
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{req_id}" Version="2.0" IssueInstant="{now_iso()}" Destination="{sso_url}" '
        f'AssertionConsumerServiceURL="{sp["acs_url"]}" '
        'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">'
        f'<saml:Issuer>{sp["entity_id"]}</saml:Issuer>'
        '<samlp:NameIDPolicy AllowCreate="true"/>'
        "</samlp:AuthnRequest>"
    )
    q = urllib.parse.urlencode({"SAMLRequest": redirect_encode(xml_text), "RelayState": relay_state})
    return req_id, f"{sso_url}?{q}"


def logout_request_url(slo_url, sp, name_id, session_index, relay_state):
    req_id = "_" + uuid.uuid4().hex
    fmt = name_id.get("Format", "")
    spnq = name_id.get("SPNameQualifier")
    spnq_attr = f' SPNameQualifier="{spnq}"' if spnq else ""
    xml_text = (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{req_id}" Version="2.0" IssueInstant="{now_iso()}" Destination="{slo_url}">'
        f'<saml:Issuer>{sp["entity_id"]}</saml:Issuer>'
        f'<saml:NameID Format="{fmt}"{spnq_attr}>{name_id.text}</saml:NameID>'
        f"<samlp:SessionIndex>{session_index}</samlp:SessionIndex>"
        "</samlp:LogoutRequest>"
    )
    q = urllib.parse.urlencode({"SAMLRequest": redirect_encode(xml_text), "RelayState": relay_state})
    return req_id, f"{slo_url}?{q}"


def sso_flow(opener, sso_url, sp, relay_state, credentials):
    """Runs one SP-initiated login. credentials=None expects SSO session reuse
    (no login form). Returns (request_id, post_form, saw_login_form)."""
    req_id, url = authn_request_url(sso_url, sp, relay_state)
    final_url, _, page = fetch(opener, url)
    forms = parse_forms(page)
    saw_login = False
    login = find_form(forms, "password")
    if login is not None:
        saw_login = True
        check(credentials is not None, f"{sp['entity_id']}: login form shown although an IdP session exists")
        check("AuthState" in login["inputs"], "login form has no AuthState field")
        fields = dict(login["inputs"])
        fields["username"], fields["password"] = credentials
        action = urllib.parse.urljoin(final_url, login["action"] or final_url)
        final_url, _, page = fetch(opener, action, fields)
        forms = parse_forms(page)
        check(find_form(forms, "password") is None,
              f"{sp['entity_id']}: still on the login form after POSTing the credentials")
    post = find_form(forms, "SAMLResponse")
    check(post is not None, f"{sp['entity_id']}: no form with SAMLResponse in:\n{strip_html(page)[:2000]}")
    return req_id, post, saw_login, page


def attributes_of(assertion):
    out = {}
    for a in assertion.findall("saml:AttributeStatement/saml:Attribute", NS):
        out[a.get("Name")] = {
            "format": a.get("NameFormat"),
            "values": [v.text for v in a.findall("saml:AttributeValue", NS)],
        }
    return out


def check_response_envelope(xml_bytes, sp, req_id, idp_entity, expect_response_sig):
    root = ET.fromstring(xml_bytes)
    check(root.tag == f"{{{NS['samlp']}}}Response", f"root element is {root.tag}, not samlp:Response")
    sig = root.find("ds:Signature", NS)
    if expect_response_sig:
        check(sig is not None, "Response has no ds:Signature")
    else:
        check(sig is None, "Response is signed although sign_response is false")
    status = root.find("samlp:Status/samlp:StatusCode", NS)
    check(status is not None and status.get("Value") == STATUS_SUCCESS,
          f"Status is {status.get('Value') if status is not None else None}, not Success")
    check(root.get("Destination") == sp["acs_url"],
          f"Destination {root.get('Destination')!r} != ACS {sp['acs_url']!r}")
    check(root.get("InResponseTo") == req_id, f"InResponseTo {root.get('InResponseTo')!r} != {req_id!r}")
    issuer = root.find("saml:Issuer", NS)
    check(issuer is not None and issuer.text == idp_entity, f"Response Issuer {issuer.text if issuer is not None else None!r}")
    return root, sig


def check_assertion(assertion, sp, req_id, idp_entity, expect_sig):
    asig = assertion.find("ds:Signature", NS)
    check((asig is not None) == expect_sig, f"Assertion signature present={asig is not None}, expected {expect_sig}")
    check(assertion.find("saml:Issuer", NS).text == idp_entity, "Assertion Issuer is not the IdP entity ID")
    aud = assertion.find("saml:Conditions/saml:AudienceRestriction/saml:Audience", NS)
    check(aud is not None and aud.text == sp["entity_id"], "Audience is not the SP entity ID")
    scd = assertion.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS)
    check(scd is not None and scd.get("Recipient") == sp["acs_url"], "SubjectConfirmationData Recipient != ACS")
    check(scd.get("InResponseTo") == req_id, "SubjectConfirmationData InResponseTo != request ID")
    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    check(name_id is not None, "no NameID in the assertion")
    authn = assertion.find("saml:AuthnStatement", NS)
    check(authn is not None and authn.get("SessionIndex"), "no AuthnStatement SessionIndex")
    return name_id, authn.get("SessionIndex"), asig


def expect_attr(attrs, name, values, name_format, ordered=False):
    check(name in attrs, f"attribute {name!r} missing; got {sorted(attrs)}")
    got = attrs[name]["values"]
    if ordered:
        check(got == values, f"attribute {name!r} = {got}, expected {values}")
    else:
        check(sorted(got) == sorted(values), f"attribute {name!r} = {got}, expected {values}")
    check(attrs[name]["format"] == name_format, f"attribute {name!r} NameFormat {attrs[name]['format']!r} != {name_format!r}")


def decrypt_assertion(enc_assertion, key_path, tmpdir):
    """Decrypts an xenc EncryptedAssertion (RSA-OAEP key transport + AES-CBC) with the openssl CLI."""
    ed = enc_assertion.find("xenc:EncryptedData", NS)
    check(ed is not None, "EncryptedAssertion without xenc:EncryptedData")
    data_alg = ed.find("xenc:EncryptionMethod", NS).get("Algorithm")
    ek = ed.find(".//xenc:EncryptedKey", NS)
    if ek is None:
        ek = enc_assertion.find(".//xenc:EncryptedKey", NS)
    check(ek is not None, "no xenc:EncryptedKey found")
    key_alg = ek.find("xenc:EncryptionMethod", NS).get("Algorithm")
    ck = base64.b64decode(ek.find("xenc:CipherData/xenc:CipherValue", NS).text)
    cd = base64.b64decode(ed.find("xenc:CipherData/xenc:CipherValue", NS).text)
    ckf = os.path.join(tmpdir, "ck.bin")
    with open(ckf, "wb") as f:
        f.write(ck)
    sym = subprocess.run(
        ["openssl", "pkeyutl", "-decrypt", "-inkey", key_path, "-in", ckf, "-pkeyopt", "rsa_padding_mode:oaep"],
        capture_output=True, check=True,
    ).stdout
    ciphers = {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc": "aes-128-cbc",
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc": "aes-192-cbc",
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc": "aes-256-cbc",
    }
    check(data_alg in ciphers, f"unexpected data encryption algorithm {data_alg}")
    iv, body = cd[:16], cd[16:]
    cdf = os.path.join(tmpdir, "cd.bin")
    with open(cdf, "wb") as f:
        f.write(body)
    plain = subprocess.run(
        ["openssl", "enc", "-d", "-" + ciphers[data_alg], "-nopad", "-K", sym.hex(), "-iv", iv.hex(), "-in", cdf],
        capture_output=True, check=True,
    ).stdout
    plain = plain[: -plain[-1]]  # XML Encryption padding: last byte = pad length
    return ET.fromstring(plain), key_alg, data_alg


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PASSED = [0]


def run(tmp):
    workdir = os.path.join(tmp, "idp")
    sp_key = os.path.join(tmp, "sp2.key")
    sp_crt = os.path.join(tmp, "sp2.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", "2",
         "-subj", "/CN=sp2.test", "-keyout", sp_key, "-out", sp_crt],
        check=True, capture_output=True,
    )
    with open(sp_crt) as f:
        SP2["sp_cert_pem"] = f.read()
    sps_file = os.path.join(tmp, "sps.json")
    with open(sps_file, "w") as f:
        json.dump([SP1, SP2, SP3], f, indent=2)

    port = free_port()
    env = dict(os.environ, SAML_PORT=str(port), SAML_SPS_FILE=sps_file)
    env.pop("SAML_IDP_KEY", None)
    env.pop("SAML_IDP_CERT", None)
    log(f"starting IdP on 127.0.0.1:{port} (workdir {workdir})")
    p = subprocess.run([os.path.join(HERE, "start.sh"), workdir], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise CheckFailed(f"start.sh failed (rc {p.returncode}):\n{p.stderr}{p.stdout}")
    metadata_url = p.stdout.strip().splitlines()[-1]
    base = f"http://127.0.0.1:{port}"
    check(metadata_url == f"{base}/saml2/idp/metadata.php", f"start.sh printed {metadata_url!r}")
    sso_url = f"{base}/saml2/idp/SSOService.php"
    slo_url = f"{base}/saml2/idp/SingleLogoutService.php"
    idp_entity = metadata_url
    try:
        opener, jar = new_browser()
        _, status, md = fetch(opener, metadata_url)
        mdroot = ET.fromstring(md.encode())
        check(mdroot.get("entityID") == idp_entity, "metadata entityID != metadata URL")
        check(mdroot.find(".//ds:X509Certificate", NS) is not None, "metadata has no signing certificate")
        log(f"ok   metadata 200 at {metadata_url}")
        PASSED[0] += 1

        # -- wrong password: the login form comes back, no SAMLResponse
        bad_opener, _ = new_browser()
        _, url = authn_request_url(sso_url, SP1, "rs-bad")
        u, _, page = fetch(bad_opener, url)
        lf = find_form(parse_forms(page), "password")
        check(lf is not None, "no login form")
        fields = dict(lf["inputs"], username="alice", password="wrong")
        _, _, page = fetch(bad_opener, urllib.parse.urljoin(u, lf["action"]), fields)
        check(find_form(parse_forms(page), "password") is not None and "SAMLResponse" not in page,
              "wrong password did not lead back to the login form")
        log("ok   wrong password is refused (login form shown again)")
        PASSED[0] += 1

        # -- SP1: basic names, signed Response and Assertion
        relay = "rs-sp1-" + uuid.uuid4().hex[:8]
        req_id, form, saw_login, page = sso_flow(opener, sso_url, SP1, relay, ("alice", "alice-pw"))
        check(saw_login, "SP1: no login form was shown for a fresh cookie jar")
        check(any(c.name == f"SimpleSAML_{port}" for c in jar), f"no IdP session cookie in the jar: {[c.name for c in jar]}")
        check(form["method"] == "post" and form["action"] == SP1["acs_url"], f"SP1: form posts to {form['action']!r}")
        check(form["inputs"].get("RelayState") == relay, f"SP1: RelayState {form['inputs'].get('RelayState')!r} != {relay!r}")
        xml1 = base64.b64decode(form["inputs"]["SAMLResponse"])
        with open(os.path.join(tmp, "sp1-response.xml"), "wb") as f:
            f.write(xml1)
        root, rsig = check_response_envelope(xml1, SP1, req_id, idp_entity, expect_response_sig=True)
        assertions = root.findall("saml:Assertion", NS)
        check(len(assertions) == 1, f"SP1: {len(assertions)} plain assertions")
        name_id, session_index, asig = check_assertion(assertions[0], SP1, req_id, idp_entity, expect_sig=True)
        check(name_id.get("Format") == NAMEID_EMAIL and name_id.text == "alice@example.com",
              f"SP1: NameID {name_id.get('Format')} {name_id.text!r}")
        attrs = attributes_of(assertions[0])
        basic = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
        expect_attr(attrs, "uid", ["alice"], basic)
        expect_attr(attrs, "mail", ["alice@example.com"], basic)
        expect_attr(attrs, "displayName", ["Alice Example"], basic)
        expect_attr(attrs, "givenName", ["Alice"], basic)
        expect_attr(attrs, "sn", ["Example"], basic)
        expect_attr(attrs, "groups", ["admins", "staff"], basic)
        sig_alg = rsig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm")
        dig_alg = rsig.find("ds:SignedInfo/ds:Reference/ds:DigestMethod", NS).get("Algorithm")
        ref = rsig.find("ds:SignedInfo/ds:Reference", NS).get("URI")
        check(ref == "#" + root.get("ID"), "Response signature does not reference the Response ID")
        check(asig.find("ds:SignedInfo/ds:Reference", NS).get("URI") == "#" + assertions[0].get("ID"),
              "Assertion signature does not reference the Assertion ID")
        log(f"ok   SP1 (basic): signed Response+Assertion ({sig_alg}, digest {dig_alg}), Success, "
            f"Destination/InResponseTo/RelayState ok, NameID {name_id.text}, attributes {sorted(attrs)}")
        PASSED[0] += 1

        # -- SP2: AD FS names, encrypted assertion; same jar -> SSO session reuse
        relay2 = "rs-sp2"
        req_id2, form2, saw_login2, _ = sso_flow(opener, sso_url, SP2, relay2, None)
        check(not saw_login2, "SP2: unexpected login form")
        check(form2["action"] == SP2["acs_url"] and form2["inputs"].get("RelayState") == relay2, "SP2: form target/RelayState")
        xml2 = base64.b64decode(form2["inputs"]["SAMLResponse"])
        with open(os.path.join(tmp, "sp2-response.xml"), "wb") as f:
            f.write(xml2)
        root2, _ = check_response_envelope(xml2, SP2, req_id2, idp_entity, expect_response_sig=True)
        check(root2.find("saml:Assertion", NS) is None, "SP2: a plaintext Assertion is present")
        enc = root2.find("saml:EncryptedAssertion", NS)
        check(enc is not None, "SP2: no EncryptedAssertion")
        a2, key_alg, data_alg = decrypt_assertion(enc, sp_key, tmp)
        check_assertion(a2, SP2, req_id2, idp_entity, expect_sig=True)
        attrs2 = attributes_of(a2)
        c = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
        expect_attr(attrs2, c + "emailaddress", ["alice@example.com"], None)
        expect_attr(attrs2, c + "upn", ["alice@example.com"], None)
        expect_attr(attrs2, c + "name", ["alice"], None)
        expect_attr(attrs2, c + "givenname", ["Alice"], None)
        expect_attr(attrs2, c + "surname", ["Example"], None)
        expect_attr(attrs2, "http://schemas.microsoft.com/identity/claims/displayname", ["Alice Example"], None)
        expect_attr(attrs2, "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", ["admins", "staff"], None)
        check(not any(n in attrs2 for n in ("uid", "mail", "groups")), f"SP2: basic names leaked: {sorted(attrs2)}")
        log(f"ok   SP2 (adfs): SSO session reused (no login form), EncryptedAssertion "
            f"({key_alg.rsplit('#', 1)[-1]} + {data_alg.rsplit('#', 1)[-1]}), decrypted, claims {sorted(attrs2)}")
        PASSED[0] += 1

        # -- SP3: OID names, persistent NameID, only the Assertion signed
        req_id3, form3, _, _ = sso_flow(opener, sso_url, SP3, "rs-sp3", None)
        xml3 = base64.b64decode(form3["inputs"]["SAMLResponse"])
        root3, _ = check_response_envelope(xml3, SP3, req_id3, idp_entity, expect_response_sig=False)
        a3 = root3.find("saml:Assertion", NS)
        nid3, _, _ = check_assertion(a3, SP3, req_id3, idp_entity, expect_sig=True)
        check(nid3.get("Format") == NAMEID_PERSISTENT and nid3.text == "alice", f"SP3: NameID {nid3.get('Format')} {nid3.text!r}")
        attrs3 = attributes_of(a3)
        uri = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
        expect_attr(attrs3, "urn:oid:0.9.2342.19200300.100.1.1", ["alice"], uri)
        expect_attr(attrs3, "urn:oid:0.9.2342.19200300.100.1.3", ["alice@example.com"], uri)
        expect_attr(attrs3, "urn:oid:2.16.840.1.113730.3.1.241", ["Alice Example"], uri)
        expect_attr(attrs3, "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", ["admins", "staff"], uri)
        log(f"ok   SP3 (uri): unsigned Response + signed Assertion, persistent NameID {nid3.text!r}, attributes {sorted(attrs3)}")
        PASSED[0] += 1

        # -- SLO from SP1: LogoutResponse redirected to SP1's slo_url, IdP session gone
        lo_id, lo_url = logout_request_url(slo_url, SP1, name_id, session_index, "rs-slo")
        location = None
        try:
            fetch(opener, lo_url)  # loopback redirects are followed; the one to the SP is captured
        except ExternalRedirect as e:
            location = e.location
        check(location is not None and location.startswith(SP1["slo_url"] + "?"),
              f"SLO: expected a redirect to {SP1['slo_url']}, got {location!r}")
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        lr = ET.fromstring(zlib.decompress(base64.b64decode(q["SAMLResponse"][0]), -15))
        check(lr.tag == f"{{{NS['samlp']}}}LogoutResponse", "SLO: not a LogoutResponse")
        check(lr.get("InResponseTo") == lo_id, "SLO: InResponseTo mismatch")
        st = lr.find("samlp:Status/samlp:StatusCode", NS).get("Value")
        check(st == STATUS_SUCCESS, f"SLO: status {st}")
        check(q.get("RelayState") == ["rs-slo"], "SLO: RelayState not returned")
        check("Signature" in q and "SigAlg" in q, "SLO: LogoutResponse redirect is not signed")
        _, _, relogin, _ = sso_flow(opener, sso_url, SP1, "rs-again", ("alice", "alice-pw"))
        check(relogin, "after SLO the IdP session still exists (no login form)")
        log(f"ok   SLO: signed LogoutResponse ({q['SigAlg'][0].rsplit('#', 1)[-1]}) to {SP1['slo_url']}, Success; login required again afterwards")
        PASSED[0] += 1
    finally:
        s = subprocess.run([os.path.join(HERE, "stop.sh"), workdir], capture_output=True, text=True)
        if s.returncode != 0:
            log(f"warning: stop.sh failed: {s.stderr}")
        else:
            log("IdP stopped")


def main():
    keep = "--keep" in sys.argv[1:]
    tmp = tempfile.mkdtemp(prefix="portcullis-saml-idp-")
    failed = False
    try:
        run(tmp)
        print(f"selftest: {PASSED[0]} passed, 0 failed")
    except CheckFailed as e:
        failed = True
        print(f"selftest: FAILED: {e}", file=sys.stderr)
        print(f"selftest: {PASSED[0]} passed, 1 failed")
    except subprocess.CalledProcessError as e:
        failed = True
        print(f"selftest: FAILED: command {e.cmd} exited {e.returncode}: {e.stderr}", file=sys.stderr)
        print(f"selftest: {PASSED[0]} passed, 1 failed")
    finally:
        if keep or failed:
            print(f"selftest: work dir kept at {tmp} (IdP logs in {tmp}/idp/log)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
