"""Free TCP ports for the processes a test or the benchmark starts.

Binding port 0 hands out a port from the kernel's ephemeral range, and that port is
free only until the next outgoing connection: a worker connecting to RabbitMQ or
PostgreSQL can take it as its local port before the server we picked it for binds it
(CI once lost Prometheus to exactly that). So pick below the ephemeral range, where the
kernel never assigns ports by itself, and never hand the same port out twice.
"""

import random
import socket
import threading

_handed_out = set()
_lock = threading.Lock()
_LOWEST = 20000  # above the well-known and registered ports our own services use


def _ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    """A loopback port that nothing listens on and that no earlier call returned."""
    highest = _ephemeral_start() - 1
    with _lock:
        for _ in range(1000):
            port = random.randint(_LOWEST, highest)
            # RabbitMQ's default distribution port is its AMQP port + 20000; keep clear of it.
            if port in _handed_out or port == 25672 or not _bindable(port):
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port between {_LOWEST} and {highest}")
