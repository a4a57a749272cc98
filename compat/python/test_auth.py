"""supabase-py against gatehouse: the calls a Python backend or script makes."""

import os
import time
import uuid

import httpx
import pytest
from supabase import create_client
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

URL = os.environ["GATEHOUSE_URL"]
ANON = os.environ["ANON_KEY"]
SERVICE = os.environ["SERVICE_ROLE_KEY"]
PASSWORD = "quartz-Lantern-47"


def email(tag="py"):
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def client():
    return create_client(URL, ANON)


def test_sign_up_sign_in_get_update_refresh_sign_out():
    c = client()
    address = email()
    signed_up = c.auth.sign_up({"email": address, "password": PASSWORD, "options": {"data": {"name": "Ada"}}})
    assert signed_up.session is not None
    assert signed_up.user.user_metadata["name"] == "Ada"
    signed_in = c.auth.sign_in_with_password({"email": address, "password": PASSWORD})
    assert signed_in.user.email == address
    assert c.auth.get_user().user.id == signed_in.user.id
    updated = c.auth.update_user({"data": {"theme": "dark"}})
    assert updated.user.user_metadata["theme"] == "dark"
    refreshed = c.auth.refresh_session()
    assert refreshed.session.refresh_token != signed_in.session.refresh_token
    c.auth.sign_out()
    with pytest.raises(AuthApiError) as gone:
        client().auth.get_user(refreshed.session.access_token)
    assert gone.value.code == "session_not_found"


def test_wrong_password_and_duplicate_and_weak_password():
    c = client()
    address = email()
    c.auth.sign_up({"email": address, "password": PASSWORD})
    with pytest.raises(AuthApiError) as wrong:
        client().auth.sign_in_with_password({"email": address, "password": "nope-Nope-1!"})
    assert wrong.value.code == "invalid_credentials"
    assert wrong.value.status == 400
    with pytest.raises(AuthApiError) as duplicate:
        client().auth.sign_up({"email": address, "password": PASSWORD})
    assert duplicate.value.code == "user_already_exists"
    with pytest.raises(AuthWeakPasswordError) as weak:
        client().auth.sign_up({"email": email(), "password": "password"})
    assert "pwned" in weak.value.reasons


def test_refresh_token_reuse_after_the_grace_interval():
    c = client()
    session = c.auth.sign_up({"email": email(), "password": PASSWORD}).session
    c.auth.refresh_session()
    time.sleep(1.6)
    with pytest.raises(AuthApiError) as reused:
        client().auth.refresh_session(session.refresh_token)
    assert reused.value.code == "refresh_token_already_used"
    assert reused.value.status == 400


def test_admin_api_with_the_service_role_key():
    admin = create_client(URL, SERVICE).auth.admin
    address = email("py-admin")
    created = admin.create_user({"email": address, "password": PASSWORD, "email_confirm": True, "user_metadata": {"a": 1}})
    user_id = created.user.id
    assert admin.get_user_by_id(user_id).user.email == address
    updated = admin.update_user_by_id(user_id, {"user_metadata": {"b": 2}, "app_metadata": {"role": "admin"}})
    assert updated.user.user_metadata == {"a": 1, "b": 2}
    assert updated.user.app_metadata["role"] == "admin"
    listed = admin.list_users(page=1, per_page=1000)
    assert user_id in {u.id for u in listed}
    admin.create_user({"email": email("py-admin2"), "password": PASSWORD, "app_metadata": {"role": "admin"}})
    demoted = admin.update_user_by_id(user_id, {"app_metadata": {"role": "user"}})
    assert demoted.user.app_metadata["role"] == "user"
    admin.delete_user(user_id, should_soft_delete=True)
    with pytest.raises(AuthApiError) as gone:
        admin.get_user_by_id(user_id)
    assert gone.value.code == "user_not_found"


def test_the_anon_key_does_not_open_the_admin_api():
    with pytest.raises(AuthApiError) as refused:
        client().auth.admin.list_users()
    assert refused.value.code == "not_admin"


def test_public_endpoints_ignore_a_stale_bearer():
    response = httpx.post(
        f"{URL}/auth/v1/signup",
        json={"email": email(), "password": PASSWORD},
        headers={"apikey": ANON, "Authorization": "Bearer an.expired.token", "X-Supabase-Api-Version": "2024-01-01"},
    )
    assert response.status_code == 200
    assert response.json()["refresh_token"]
