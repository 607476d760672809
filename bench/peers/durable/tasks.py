"""django-q2's no-op task (by its dotted path, bench.peers.durable.tasks.noop)."""


def noop():
    pass
