"""Content negotiation for downloads (exports here, run artifacts in the training apps)."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation


class AnyContentNegotiation(BaseContentNegotiation):
    """A download is what it is whatever the client accepts; errors still come as JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
