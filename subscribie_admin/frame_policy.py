"""No page of the admin may be framed by another site (clickjacking).

``X-Frame-Options: DENY`` comes from Django's middleware; this adds the CSP equivalent that
current browsers prefer, ``frame-ancestors 'none'``, to every response that has no CSP yet.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

FRAME_ANCESTORS_POLICY = "frame-ancestors 'none'"


class FrameAncestorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", FRAME_ANCESTORS_POLICY)
        return response
