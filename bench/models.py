"""The one table the baseline view writes to."""

import uuid

from django.db import models


class BaselineRow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
