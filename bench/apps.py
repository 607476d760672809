from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by bench.settings: the baseline view's table. Never in the product."""

    name = "bench"
    label = "bench"
    default_auto_field = "django.db.models.BigAutoField"
