"""The port helper the process tests rely on: never an ephemeral port, never one twice."""

import socket

from tests.support import ports


def test_ports_come_from_below_the_ephemeral_range():
    # Given the kernel's ephemeral range, which outgoing connections draw from
    start = ports._ephemeral_start()
    # When many ports are handed out
    picked = [ports.free_port() for _ in range(50)]
    # Then none of them could be taken by an outgoing connection before its server binds it
    assert all(ports._LOWEST <= port < start for port in picked)


def test_a_port_is_never_handed_out_twice():
    # Given ports handed out and not yet bound by anyone
    picked = [ports.free_port() for _ in range(200)]
    # Then they are all different
    assert len(set(picked)) == len(picked)


def test_a_port_something_listens_on_is_skipped(monkeypatch):
    # Given a listener on a port the random pick lands on first
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        choices = iter([taken, 20001, 20002, 20003])
        monkeypatch.setattr(ports.random, "randint", lambda low, high: next(choices))
        monkeypatch.setattr(ports, "_handed_out", set())
        # When a port is asked for
        port = ports.free_port()
    # Then the busy one is passed over
    assert port != taken
