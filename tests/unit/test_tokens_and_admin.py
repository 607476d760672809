"""Tokens: created by a command (shown once, stored hashed), revocable in the admin."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from conveyor import tokens
from conveyor.core.models import ApiToken, TaskRecord

pytestmark = pytest.mark.django_db


def test_create_token_prints_the_secret_as_the_last_line_and_stores_only_its_hash():
    out = io.StringIO()
    call_command("create_token", "--scope", "admin", stdout=out)
    secret = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert secret.startswith("cvr_")
    assert secret not in (token.key_hash, token.prefix)
    assert token.key_hash == tokens.hash_secret(secret)
    assert tokens.lookup(secret) == token
    assert token.scopes == ["admin"]


def test_scopes_nest_admin_over_write_over_read():
    token, _ = tokens.create("t", ["write"])
    assert token.has_scope("read") and token.has_scope("write") and not token.has_scope("admin")


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError):
        tokens.create("t", ["root"])


def test_admin_revokes_a_token_and_it_stops_working(client, make_token):
    # Given a superuser and a live token
    User.objects.create_superuser("admin", "admin@example.com", "pw-123456")
    client.login(username="admin", password="pw-123456")
    token, secret = make_token(("read",))
    # When the admin revokes it
    response = client.post(
        "/admin/conveyor/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert response.status_code == 200
    # Then the token no longer authenticates
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert tokens.lookup(secret) is None


def test_admin_lists_tasks(client, make_token):
    User.objects.create_superuser("admin", "admin@example.com", "pw-123456")
    client.login(username="admin", password="pw-123456")
    TaskRecord.objects.create(task_path="demo.tasks.add", args=[1, 2])
    response = client.get("/admin/conveyor/taskrecord/")
    assert response.status_code == 200
    assert b"demo.tasks.add" in response.content


def test_using_a_token_records_when_it_was_last_used():
    token, secret = tokens.create("t", ["read"])
    assert token.last_used_at is None
    tokens.lookup(secret)
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_revoked_token_stops_working_within_the_cache_window(client, make_token, monkeypatch):
    from django.utils import timezone

    # Given a token that was just used (so it is cached)
    token, secret = make_token(("read",))
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    # When it is revoked by another process (no cache reset here) and the cache window passes
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    monkeypatch.setattr(tokens, "CACHE_SECONDS", 0.0)
    tokens.forget_cached()
    # Then it is refused
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
