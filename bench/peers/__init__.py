"""The peers Conveyor is compared with: bare Dramatiq and Celery, each with a no-op task."""
