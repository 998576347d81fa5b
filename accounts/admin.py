from django.contrib import admin

from accounts.models import ApiToken


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
