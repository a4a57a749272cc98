"""supabase-py against the gatehouse with a mailer (run.sh's second server): the mailed
flows a Python backend drives. Codes and links are read from the .eml files in MAIL_DIR
with the standard library's email package."""

import os
import re
import time
import uuid
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError

URL = os.environ["MAIL_GATEHOUSE_URL"]
ANON = os.environ["MAIL_ANON_KEY"]
SERVICE = os.environ["MAIL_SERVICE_ROLE_KEY"]
MAIL_DIR = Path(os.environ["MAIL_DIR"])
PASSWORD = "quartz-Lantern-47"
NEW_PASSWORD = "orbit-Meadow-93!"
APP = "http://localhost:3000"


def email(tag="py-mail"):
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def client(flow_type=None):
    """A client as a Python app makes it: supabase-py's default flow is PKCE."""
    if flow_type is None:
        return create_client(URL, ANON)
    return create_client(URL, ANON, options=ClientOptions(flow_type=flow_type))


def admin():
    return create_client(URL, SERVICE).auth.admin


_parsed = {}


def messages_to(address):
    """Every message to `address` in MAIL_DIR, oldest first (files are named by send time)."""
    if not MAIL_DIR.is_dir():
        return []
    found = []
    for path in sorted(MAIL_DIR.glob("*.eml")):
        if path.name.startswith("."):
            continue
        if path.name not in _parsed:
            _parsed[path.name] = parse(path)
        message = _parsed[path.name]
        if address.lower() in message["to"]:
            found.append(message)
    return found


LINK = re.compile(r"https?://\S+/auth/v1/verify\?\S+")
CODE = re.compile(r"^[ \t]*(\d{6})[ \t]*$", re.MULTILINE)


def parse(path):
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    # The file holds the bytes SMTP would send, CRLF line ends included.
    text = msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = msg.get_body(preferencelist=("html",)).get_content()
    links = LINK.findall(text)
    assert len(links) == 1, f"{path.name}: expected one verify link in:\n{text}"
    link = links[0]
    codes = CODE.findall(text[: text.index(link)])
    assert codes, f"{path.name}: no 6-digit code before the link in:\n{text}"
    query = parse_qs(urlsplit(link).query)
    return {
        "file": path.name,
        "to": [a.addr_spec.lower() for a in msg["To"].addresses],
        "subject": str(msg["Subject"]),
        "text": text,
        "html": html,
        "code": codes[-1],
        "link": link,
        "token": query["token"][0],
        "type": query["type"][0],
        "redirect_to": query.get("redirect_to", [None])[0],
    }


def wait_for_mail(address, n=1, timeout=10.0):
    """The n-th message (1-based) to `address`, waiting for the server's outbox."""
    deadline = time.monotonic() + timeout
    while True:
        found = messages_to(address)
        if len(found) >= n:
            return found[n - 1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no message #{n} to {address} within {timeout} s (found {len(found)})")
        time.sleep(0.1)


def follow_link(link):
    """What a browser does with the emailed link: GET the page, submit its form."""
    page = httpx.get(link)
    assert page.status_code == 200
    action = re.search(r'<form[^>]*action="([^"]*)"', page.text).group(1)
    fields = dict(re.findall(r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"', page.text))
    fields = {k: v.replace("&amp;", "&").replace("&quot;", '"') for k, v in fields.items()}
    return httpx.post(httpx.URL(link).join(action), data=fields, follow_redirects=False)


def confirmed_user(tag):
    address = email(tag)
    admin().create_user({"email": address, "password": PASSWORD, "email_confirm": True})
    return address


def test_sign_up_needs_confirmation_then_verify_otp_signup():
    c = client()
    address = email("py-signup")
    signed_up = c.auth.sign_up({"email": address, "password": PASSWORD, "options": {"data": {"name": "Ada"}}})
    assert signed_up.session is None
    assert signed_up.user.email == address
    assert signed_up.user.email_confirmed_at is None
    mail = wait_for_mail(address)
    assert mail["type"] == "signup"
    assert mail["code"] in mail["html"]
    with pytest.raises(AuthApiError) as refused:
        client().auth.sign_in_with_password({"email": address, "password": PASSWORD})
    assert refused.value.code == "email_not_confirmed"
    assert refused.value.status == 400
    verified = c.auth.verify_otp({"email": address, "token": mail["code"], "type": "signup"})
    assert verified.session is not None and verified.session.access_token
    assert verified.user.email_confirmed_at is not None
    assert verified.user.user_metadata["name"] == "Ada"
    assert c.auth.get_user().user.id == verified.user.id
    with pytest.raises(AuthApiError) as reused:
        client().auth.verify_otp({"email": address, "token": mail["code"], "type": "signup"})
    assert reused.value.code == "otp_expired"
    assert reused.value.status == 403
    assert client().auth.sign_in_with_password({"email": address, "password": PASSWORD}).session


def test_sign_up_with_a_taken_address_is_a_stand_in_without_identities():
    address = confirmed_user("py-taken")
    result = client().auth.sign_up({"email": address, "password": NEW_PASSWORD})
    assert result.session is None
    assert result.user.identities == []
    assert "already exists" in wait_for_mail(address)["text"]


@pytest.mark.parametrize("flow_type", ["pkce", "implicit"])
def test_sign_in_with_otp_then_verify_otp_email(flow_type):
    address = confirmed_user("py-otp")
    c = client(flow_type)
    c.auth.sign_in_with_otp({"email": address})
    mail = wait_for_mail(address)
    assert mail["type"] == "magiclink"
    verified = c.auth.verify_otp({"email": address, "token": mail["code"], "type": "email"})
    assert verified.user.email == address
    assert verified.session.access_token
    assert c.auth.get_session().access_token == verified.session.access_token


def test_sign_in_with_otp_makes_an_account_for_a_new_address():
    address = email("py-otp-new")
    client().auth.sign_in_with_otp({"email": address, "options": {"data": {"plan": "pro"}}})
    mail = wait_for_mail(address)
    verified = client().auth.verify_otp({"token_hash": mail["token"], "type": "email"})
    assert verified.user.email == address
    assert verified.user.user_metadata["plan"] == "pro"
    assert verified.user.email_confirmed_at is not None


def test_reset_password_for_email_verify_recovery_update_user():
    address = confirmed_user("py-recover")
    c = client()
    assert c.auth.reset_password_for_email(address, {"redirect_to": f"{APP}/reset"}) is None
    mail = wait_for_mail(address)
    assert mail["type"] == "recovery"
    assert mail["redirect_to"] == f"{APP}/reset"
    verified = c.auth.verify_otp({"email": address, "token": mail["code"], "type": "recovery"})
    assert verified.session is not None
    # A redeemed recovery code is a recent authentication: no nonce, no current password.
    c.auth.update_user({"password": NEW_PASSWORD})
    with pytest.raises(AuthApiError) as old:
        client().auth.sign_in_with_password({"email": address, "password": PASSWORD})
    assert old.value.code == "invalid_credentials"
    assert client().auth.sign_in_with_password({"email": address, "password": NEW_PASSWORD}).session


def test_pkce_magic_link_followed_then_exchange_code_for_session():
    address = confirmed_user("py-pkce")
    c = client("pkce")
    c.auth.sign_in_with_otp({"email": address, "options": {"email_redirect_to": f"{APP}/cb"}})
    mail = wait_for_mail(address)
    response = follow_link(mail["link"])
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{APP}/cb"
    code = parse_qs(location.query)["code"][0]
    exchanged = c.auth.exchange_code_for_session({"auth_code": code})
    assert exchanged.user.email == address
    assert exchanged.session.access_token


def test_admin_invite_user_by_email_then_verify_invite():
    address = email("py-invited")
    invited = admin().invite_user_by_email(address, {"data": {"team": "compilers"}, "redirect_to": f"{APP}/welcome"})
    assert invited.user.email == address
    assert invited.user.user_metadata["team"] == "compilers"
    mail = wait_for_mail(address)
    assert mail["type"] == "invite"
    assert mail["redirect_to"] == f"{APP}/welcome"
    c = client()
    verified = c.auth.verify_otp({"token_hash": mail["token"], "type": "invite"})
    assert verified.user.id == invited.user.id
    assert verified.user.email_confirmed_at is not None
    c.auth.update_user({"password": NEW_PASSWORD})
    assert client().auth.sign_in_with_password({"email": address, "password": NEW_PASSWORD}).session


def test_admin_generate_link_magiclink_code_and_token_hash():
    address = confirmed_user("py-generated")
    link = admin().generate_link({"type": "magiclink", "email": address})
    assert link.user.email == address
    props = link.properties
    assert props.verification_type == "magiclink"
    assert re.fullmatch(r"\d{6}", props.email_otp)
    assert parse_qs(urlsplit(props.action_link).query)["token"][0] == props.hashed_token
    by_code = client().auth.verify_otp({"email": address, "token": props.email_otp, "type": "magiclink"})
    assert by_code.user.email == address
    again = admin().generate_link({"type": "magiclink", "email": address}).properties
    by_hash = client().auth.verify_otp({"token_hash": again.hashed_token, "type": "magiclink"})
    assert by_hash.session.access_token
    time.sleep(1.5)
    assert messages_to(address) == [], "generate_link sends nothing"


def test_admin_generate_link_signup_confirms_on_verify():
    address = email("py-generated-signup")
    link = admin().generate_link({"type": "signup", "email": address, "password": PASSWORD})
    assert link.properties.verification_type == "signup"
    with pytest.raises(AuthApiError) as unconfirmed:
        client().auth.sign_in_with_password({"email": address, "password": PASSWORD})
    assert unconfirmed.value.code == "email_not_confirmed"
    client().auth.verify_otp({"token_hash": link.properties.hashed_token, "type": "signup"})
    assert client().auth.sign_in_with_password({"email": address, "password": PASSWORD}).session


# GoTrue behaviour gatehouse once differed in: the email change's first half answers code
# "200" as a string, and generate_link reads ?redirect_to= as supabase-py sends it.


def test_email_change_both_halves_with_verify_otp():
    address = confirmed_user("py-change")
    c = client()
    c.auth.sign_in_with_password({"email": address, "password": PASSWORD})
    new_address = email("py-changed")
    updated = c.auth.update_user({"email": new_address})
    assert updated.user.new_email == new_address
    current, new = wait_for_mail(address), wait_for_mail(new_address)
    half = client().auth.verify_otp({"token_hash": current["token"], "type": "email_change"})
    assert half.session is None
    done = client().auth.verify_otp({"token_hash": new["token"], "type": "email_change"})
    assert done.user.email == new_address


def test_admin_generate_link_honours_redirect_to():
    address = confirmed_user("py-generated-redirect")
    link = admin().generate_link({"type": "magiclink", "email": address, "options": {"redirect_to": f"{APP}/in"}})
    assert link.properties.redirect_to == f"{APP}/in"
