"""/api/v1/catalog: the tasks a client can submit, with their parameters and limits."""

from django.http import HttpRequest
from ninja import Router

from conveyor import catalog
from services.web.auth import may_run, require
from services.web.schemas import ERRORS, CatalogTask

router = Router(tags=["catalog"])


@router.get("", response={200: list[CatalogTask], **ERRORS}, summary="Runnable tasks")
def list_catalog(request: HttpRequest) -> list[dict]:
    """Every task this token may submit, with its parameters, queue and limits."""
    require(request, "read")
    return [entry.describe() for entry in catalog.entries() if may_run(request, entry)]
