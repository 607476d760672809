"""services/web/gunicorn.conf.py: where the web service's control socket goes."""

import runpy
import tempfile
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "services/web/gunicorn.conf.py"


def settings(monkeypatch, bind):
    monkeypatch.setenv("WEB_BIND", bind)
    return runpy.run_path(str(CONF))


def test_the_control_socket_lies_in_the_temp_folder_not_in_home(monkeypatch):
    # Given a web service whose HOME is read-only (the container's /app)
    monkeypatch.setenv("HOME", "/app")
    # When gunicorn's settings are read
    socket = Path(settings(monkeypatch, "0.0.0.0:8000")["control_socket"])
    # Then its control socket goes under the temp folder (a tmpfs in the container)
    assert socket.is_relative_to(tempfile.gettempdir())


def test_two_web_services_on_one_machine_get_different_control_sockets(monkeypatch):
    # Given two web services bound to different addresses (make dev beside a test's)
    first = settings(monkeypatch, "127.0.0.1:8000")["control_socket"]
    second = settings(monkeypatch, "127.0.0.1:23235")["control_socket"]
    # Then neither unlinks the other's socket
    assert first != second
