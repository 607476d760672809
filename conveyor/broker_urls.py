"""BROKER_URL names one RabbitMQ node or several, separated by ';' (Dramatiq's convention).

Every client (Dramatiq's broker, the publisher, the queue metrics, the readiness check)
gets the list and tries the nodes in order: a client whose node died reconnects to the
next one that answers.
"""

import pika


def parameters(url: str, *, timeout: float | None = None) -> list[pika.URLParameters]:
    """One pika parameter set per node, in the order given; with `timeout`, each fails fast."""
    found = []
    for part in url.split(";"):
        part = part.strip()
        if not part:
            continue
        params = pika.URLParameters(part)
        if timeout is not None:
            params.socket_timeout = timeout
            params.blocked_connection_timeout = timeout
            params.stack_timeout = timeout
            params.connection_attempts = 1
        found.append(params)
    return found


def connect(url: str, *, timeout: float | None = None) -> pika.BlockingConnection:
    """A connection to the first node that answers (pika tries each in turn)."""
    return pika.BlockingConnection(parameters(url, timeout=timeout))
