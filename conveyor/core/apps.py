from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "conveyor.core"
    label = "conveyor"
    verbose_name = "Conveyor"

    def ready(self) -> None:
        # Import every app's tasks.py and declare a Dramatiq actor for each task, in
        # every process: the web service needs the catalog to validate submissions,
        # the worker needs the actors to run them.
        # Late: apps.py is imported before the models are ready; the catalog needs them.
        from conveyor import catalog

        catalog.autodiscover()
