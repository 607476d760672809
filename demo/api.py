"""Upload a profile picture over HTTP; a worker writes the thumbnails.

An example of an app adding its own endpoint to Conveyor's API: config/api.py mounts
this router; it uses the web service's auth and schemas and Conveyor's submission path.
"""

import uuid

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse
from ninja import File, Router
from ninja.files import UploadedFile
from ninja.responses import Status
from PIL import Image, UnidentifiedImageError
from PIL.Image import DecompressionBombError

from conveyor import submission
from conveyor.errors import BodyTooLarge, ClientError
from services.web.auth import require
from services.web.schemas import ERRORS, TaskOut, task_location, task_out

router = Router(tags=["demo"])

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}


class InvalidImage(ClientError):
    """The upload is not an image of a supported format."""

    code = "invalid_image"


class ImageTooLarge(ClientError):
    """The image has more pixels than CONVEYOR_MAX_IMAGE_PIXELS."""

    code = "image_too_large"


@router.post("/profile-pictures", response={202: TaskOut, **ERRORS})
def upload_profile_picture(request: HttpRequest, response: HttpResponse, image: File[UploadedFile]) -> Status:
    """Store the image, then enqueue `demo.tasks.thumbnail` for it (multipart field `image`)."""
    require(request, "write")
    if image.size > settings.CONVEYOR_MAX_UPLOAD_BYTES:
        raise BodyTooLarge(f"image exceeds {settings.CONVEYOR_MAX_UPLOAD_BYTES} bytes")
    limit = settings.CONVEYOR_MAX_IMAGE_PIXELS
    try:
        with Image.open(image) as probe:
            width, height = probe.size  # read from the header: nothing is decoded yet
            if width * height > limit:
                raise ImageTooLarge(f"the image is {width} x {height} pixels; at most {limit:,} pixels are accepted")
            probe.verify()  # reject non-images before anything is stored or queued
            kind = ALLOWED_FORMATS.get(probe.format)
    except DecompressionBombError:
        raise ImageTooLarge(f"the image has more than {limit:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        kind = None
    if kind is None:
        raise InvalidImage(f"upload a {', '.join(ALLOWED_FORMATS)} image")
    image.seek(0)
    path = default_storage.save(f"profile-pictures/{uuid.uuid4().hex}.{kind}", image)
    record = submission.prepare(submission.TaskSpec(task_path="demo.tasks.thumbnail", args=[path], kwargs={}))
    record = submission.submit(record, owner=request.api_token).record
    response["Location"] = task_location(record)
    return Status(202, task_out(record))
