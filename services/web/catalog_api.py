"""/api/v1/catalog: the tasks a client can submit, with their parameters and limits."""

from django.http import HttpRequest
from ninja import Router

from conveyor import catalog
from services.web.auth import require
from services.web.schemas import ERRORS, CatalogTask

router = Router(tags=["catalog"])


@router.get("", response={200: list[CatalogTask], **ERRORS}, summary="Runnable tasks")
def list_catalog(request: HttpRequest) -> list[dict]:
    """Every task that can be submitted, with its parameters, queue and limits."""
    require(request, "read")
    return [entry.describe() for entry in catalog.entries()]
