from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "services.web"
    label = "web"
    verbose_name = "Conveyor web"
