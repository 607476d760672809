"""The seed documents' feedback form: it enqueues the email and answers at once."""

from django.conf import settings
from django.shortcuts import render

from demo.forms import FeedbackForm
from demo.tasks import send_email


def feedback(request):
    if request.method == "POST":
        form = FeedbackForm(request.POST)
        if form.is_valid():
            result = send_email.enqueue(
                to=settings.DEFAULT_FROM_EMAIL,
                subject=f"Feedback from {form.cleaned_data['email']}",
                body=form.cleaned_data["message"],
            )
            return render(request, "demo/feedback_thanks.html", {"task_id": result.id}, status=202)
    else:
        form = FeedbackForm()
    return render(request, "demo/feedback.html", {"form": form})
