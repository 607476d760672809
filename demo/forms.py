from django import forms


class FeedbackForm(forms.Form):
    email = forms.EmailField(label="Your email")
    message = forms.CharField(widget=forms.Textarea, max_length=5000)
