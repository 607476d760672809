from django.contrib import admin
from django.urls import include, path

from config.api import api
from services.web import exposition, health

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    # Normally answered by RequestMetricsMiddleware before the Host check; see there.
    path("metrics", exposition.metrics_view),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("dashboard/", include("services.web.dashboard.urls")),
    path("demo/", include("demo.urls")),
]

# Unknown paths and unhandled faults under /api/ answer JSON too (services/web/errors.py).
handler404 = "services.web.errors.not_found_view"
handler500 = "services.web.errors.server_error_view"
