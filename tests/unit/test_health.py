"""/readyz answers without a token, so it says what is down, never why (no hosts, no users)."""

import pytest

from services.web import health

pytestmark = pytest.mark.django_db


def test_readyz_names_what_is_down_without_the_exception_text(client, settings, monkeypatch):
    # Given a broker URL naming a user and a host where nothing listens
    settings.BROKER_URL = "amqp://secret-user:secret-pass@127.0.0.1:1/%2F"
    monkeypatch.setattr(health, "_broker_check", {"at": 0.0, "ok": False, "error": ""})
    monkeypatch.setattr(health, "BROKER_CHECK_TTL", -1)
    # When /readyz is asked
    response = client.get("/readyz")
    # Then 503, the broker is "unreachable", and nothing of the URL or the error shows
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unreachable"}
    assert b"secret" not in response.content and b"127.0.0.1" not in response.content
