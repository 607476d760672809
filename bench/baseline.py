"""The ceiling for any durable Django endpoint: parse a JSON body, insert one row, answer 202.

Served by the same gunicorn, settings and middleware as the API (bench.urls mounts it
next to the product's URLs), so the gap between this and POST /api/v1/tasks is what
Conveyor's own work costs: auth, validation, the outbox row, the hand-over to the publisher.
"""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bench.models import BaselineRow


@csrf_exempt
@require_POST
def insert_one(request):
    row = BaselineRow.objects.create(payload=json.loads(request.body))
    return JsonResponse({"id": str(row.id)}, status=202)
