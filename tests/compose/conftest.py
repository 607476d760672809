"""One compose stack on a private Docker engine for tests/compose (make test-compose).

Bringing it up costs minutes (engine, stand-ins, the image build, healthchecks), so every
test here shares it; they run in file order and the last ones stop, take down and bring
it up again. The engine and all it held are removed at the end, passed or failed.
"""

import pytest

from tests.compose.stack import ComposeStack
from tests.support.processes import http


@pytest.fixture(scope="session")
def stack(request):
    stack = ComposeStack(workers=4)
    try:
        stack.start_engine()
        stack.write_env()
        stack.prepare_images()
        stack.figures["up"] = stack.up()
        stack.figures["healthy after up"] = stack.wait_healthy()
    except BaseException:
        if stack.env is not None:
            print(stack.logs())
        stack.destroy()
        raise
    print(f"\ncompose: {' '.join(map(str, stack.compose_command[:1]))}; services {', '.join(stack.services)}")
    print(f"stand-ins built: {', '.join(stack.stand_ins) or 'none (every image pulled)'}")
    if stack.left_out:
        print(f"left out (no image, no stand-in): {', '.join(stack.left_out)}")
    print("; ".join(f"{name} {value:.1f}{'' if 'MB' in name else ' s'}" for name, value in stack.figures.items()))
    yield stack
    if request.session.testsfailed:
        print(stack.logs())
    stack.destroy()


@pytest.fixture(scope="session")
def token(stack):
    """An admin token, made the way the README says: `compose exec web python manage.py create_token`."""
    return stack.exec("web", "python", "manage.py", "create_token", "--scope", "admin").stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def api(stack, token):
    """HTTP to the web service through its published loopback port: (status, body)."""

    def call(method, path, body=None, timeout=15):
        status, payload, _ = http(method, stack.url("WEB_PORT", path), body, token=token, timeout=timeout)
        return status, payload

    return call
