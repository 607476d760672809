"""One operator action: the guarded change runs, and its success or its refusal becomes the page's message."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from conveyor.errors import ConveyorError


def carry_out(request: HttpRequest, change: Callable[[], Any], done: str, refused: str = "") -> bool:
    """Run `change` (a conveyor call that refuses with a ConveyorError); True if it was made."""
    try:
        change()
    except ConveyorError as exc:
        messages.error(request, f"{refused}{exc.message}")
        return False
    messages.success(request, done)
    return True
