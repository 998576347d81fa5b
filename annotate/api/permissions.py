"""Who may call the annotate API: the helpers of runs.permissions (Django permissions, as in the admin and on the
pages). Annotators need none for their own HITs and judgments; staff need the permission of each action."""

from __future__ import annotations

from runs.permissions import HasPermissions, has_permissions

__all__ = ["HasPermissions", "has_permissions"]
