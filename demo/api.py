"""Upload a profile picture over HTTP; a worker writes the thumbnails."""

import uuid

from django.conf import settings
from django.core.files.storage import default_storage
from ninja import File, Router
from ninja.files import UploadedFile

from conveyor import submission
from services.web.auth import require
from services.web.errors import error_response
from services.web.schemas import ErrorOut, TaskOut

router = Router(tags=["demo"])

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}


@router.post("/profile-pictures", response={202: TaskOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 413: ErrorOut})
def upload_profile_picture(request, image: File[UploadedFile]):
    """Store the image, then enqueue `demo.tasks.thumbnail` for it (multipart field `image`)."""
    from PIL import Image, UnidentifiedImageError

    from services.web.api import api, task_out

    require(request, "write")
    if image.size > settings.CONVEYOR_MAX_UPLOAD_BYTES:
        return error_response(413, "body_too_large", f"image exceeds {settings.CONVEYOR_MAX_UPLOAD_BYTES} bytes")
    try:
        with Image.open(image) as probe:
            probe.verify()  # reject non-images before anything is stored or queued
            kind = ALLOWED_FORMATS.get(probe.format)
    except (UnidentifiedImageError, OSError, SyntaxError):
        kind = None
    if kind is None:
        return error_response(400, "invalid_image", f"upload a {', '.join(ALLOWED_FORMATS)} image")
    image.seek(0)
    path = default_storage.save(f"profile-pictures/{uuid.uuid4().hex}.{kind}", image)
    record = submission.prepare(submission.TaskSpec(task_path="demo.tasks.thumbnail", args=[path], kwargs={}))
    record, _ = submission.submit(record, owner=request.api_token)
    response = api.create_response(request, task_out(record), status=202)
    response["Location"] = f"/api/v1/tasks/{record.id}"
    return response
