"""Periodic tasks: schedules declared in code (`@periodic`) or at runtime, fired exactly once.

The models live in `models.py` (app label `conveyor`), fire-time maths in `triggers.py`
(APScheduler 3.11 triggers), firing in `firing.py`; the long-running process that drives
them is `services/scheduler/`.
"""

from conveyor.scheduling.declarations import periodic

__all__ = ["periodic"]
