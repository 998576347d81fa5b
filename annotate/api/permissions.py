"""Who may call the annotate API: staff reach everything (runs.permissions.IsStaff), signed-in users read,
anonymous requests are refused."""

from __future__ import annotations

from rest_framework import permissions
from rest_framework.request import Request

from runs.permissions import IsStaff

__all__ = ["IsStaff", "ReadOrStaff", "is_staff"]


class ReadOrStaff(permissions.BasePermission):
    """Any signed-in user reads; only staff write."""

    message = "Only staff may change this."

    def has_permission(self, request: Request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff


def is_staff(request: Request) -> bool:
    return bool(request.user.is_authenticated and request.user.is_staff)
