"""The durable peers: Celery storing every result with django-celery-results, and django-q2
on its ORM broker, both on the benchmark's PostgreSQL server.

They run with Django settings of their own (bench.peers.durable.settings), in processes
of their own: the benchmark's main process has Conveyor's settings loaded, so it
measures them from outside, with plain SQL on their database (bench.peers.durable.drain).
"""
