"""Django, a one-file project with default settings (served by gunicorn: django_app:application)."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

LOG = os.environ["LF_FW_LOG"]

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="lf-e2e-frameworks-not-a-secret",
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)


def _handler(route: str):
    @csrf_exempt
    @require_POST
    def view(request):
        with open(LOG, "a") as f:
            f.write(f"{route} {request.headers.get('x-fw-seq', '-')}\n")
        return HttpResponse(f"LF-HANDLER {route}\n", content_type="text/plain")

    return view


urlpatterns = [
    path("linksfield/sms", _handler("md5")),
    path("cube/notify", _handler("cube")),
]

application = get_wsgi_application()
