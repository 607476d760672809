import pytest
from django.conf import settings
from django.db import connection

from tests.support.processes import System


@pytest.fixture
def system_env(transactional_db):
    """Environment for service processes: the test database and this session's vhost."""
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return {
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{host}/{db['NAME']}",
        "BROKER_URL": settings.BROKER_URL,
        "DJANGO_SECRET_KEY": "e2e-secret-key-" + "x" * 40,
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CONVEYOR_MIN_BACKOFF_MS": "100",
        "CONVEYOR_MAX_BACKOFF_MS": "1000",
        "CONVEYOR_OUTBOX_LEASE_SECONDS": "2",
        "CONVEYOR_RELAY_INTERVAL_SECONDS": "0.2",
        "CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS": "30",
        "DJANGO_MEDIA_ROOT": settings.MEDIA_ROOT,
        "DJANGO_STATIC_ROOT": str(settings.STATIC_ROOT),
    }


@pytest.fixture
def token(make_token):
    return make_token(("admin",))[1]


@pytest.fixture
def start_system(system_env):
    systems = []

    def start(workers=2, env=None, **kwargs):
        system = System({**system_env, **(env or {})}, workers=workers, **kwargs)
        systems.append(system)
        try:
            system.start()
        except Exception:
            print(system.logs())
            raise
        return system

    yield start
    for system in systems:
        system.stop()
