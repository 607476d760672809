"""A test-only app with a task that kills the worker process running it (os._exit).

Installed only by tests/crashing/settings.py, which the worker-death test gives its
processes: never in the catalog of a real deployment.
"""
