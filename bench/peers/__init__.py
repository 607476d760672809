"""The peers Conveyor is compared with, each with a no-op task: bare Dramatiq and Celery here;
Celery with django-celery-results and django-q2, which store every outcome, in durable/."""
