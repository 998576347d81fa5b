from django.contrib import admin

from accounts.models import ApiToken
from accounts.tokens import token_refusal


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Who has a token and when it was used; the key is never stored, and its digest is not shown either."""

    list_display = ["user", "prefix", "created", "last_used"]
    search_fields = ["user__username", "prefix"]
    fields = ["user", "prefix", "created", "last_used"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # a key is shown once, to its user: made on the account page, the API or create_api_token

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoking someone's token is managing it: the same rule as the API (never a user with more rights).
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or token_refusal(request.user, obj.user) is None)
