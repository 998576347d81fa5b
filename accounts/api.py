"""API token endpoints.

/api/auth/token/            POST: a new token (username + password in the body, or as the signed-in user); the key
                            is in this response only. GET: the token's details (never the key). DELETE: revoke it.
/api/auth/tokens/{username}/  The same for any user's token, for staff with the API-token permissions; issuing and
                            revoking also need every permission the user holds (and a superuser for a superuser).
"""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.lockout import lockout_response
from accounts.models import ApiToken
from accounts.tokens import current_token, issue_token, revoke_token, token_refusal
from runs.permissions import HasPermissions


class TokenInfoSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.get_username", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["username", "prefix", "created", "last_used"]


class NewTokenSerializer(TokenInfoSerializer):
    token = serializers.CharField(help_text="The key. Shown in this response only: it is stored as a digest.")

    class Meta(TokenInfoSerializer.Meta):
        fields = [*TokenInfoSerializer.Meta.fields, "token"]


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(required=False)
    password = serializers.CharField(required=False, style={"input_type": "password"}, trim_whitespace=False)


def new_token_response(user) -> Response:
    token, key = issue_token(user)
    token.token = key
    return Response(NewTokenSerializer(token).data)


class OwnTokenView(APIView):
    # Anyone may POST credentials; the other methods need a signed-in user (checked per method).
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=CredentialsSerializer, responses={200: NewTokenSerializer})
    def post(self, request: Request) -> Response:
        """A new token, replacing any old one: with username and password, or for the signed-in user."""
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        username, password = credentials.validated_data.get("username"), credentials.validated_data.get("password")
        if username is None and password is None and request.user.is_authenticated:
            return new_token_response(request.user)
        if not username or password is None:
            raise serializers.ValidationError({"non_field_errors": ['Must include "username" and "password".']})
        # The Django request, not DRF's wrapper: django-axes marks a lockout on it for its middleware.
        http_request = request._request
        user = authenticate(http_request, username=username, password=password)
        if getattr(http_request, "axes_locked_out", False):
            return lockout_response(http_request)
        if user is None or not user.is_active:
            raise serializers.ValidationError({"non_field_errors": ["Unable to log in with provided credentials."]})
        return new_token_response(user)

    @extend_schema(responses={200: TokenInfoSerializer})
    def get(self, request: Request) -> Response:
        """The signed-in user's token: when it was made and last used, and its first characters."""
        self._require_login(request)
        token = current_token(request.user)
        if token is None:
            raise NotFound("You have no API token.")
        return Response(TokenInfoSerializer(token).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        """Revoke the signed-in user's token."""
        self._require_login(request)
        if not revoke_token(request.user):
            raise NotFound("You have no API token.")
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _require_login(self, request: Request) -> None:
        if not request.user.is_authenticated:
            self.permission_denied(request)


class UserTokenView(APIView):
    permission_classes = [HasPermissions]
    # Staff with the model permission for the method: view to read, change to rotate, delete to revoke.
    required_permissions = {
        "get": ("accounts.view_apitoken",),
        "options": ("accounts.view_apitoken",),
        "post": ("accounts.change_apitoken",),
        "delete": ("accounts.delete_apitoken",),
    }

    def _user(self, username: str):
        return get_object_or_404(get_user_model(), **{get_user_model().USERNAME_FIELD: username})

    def _managed_user(self, request: Request, username: str):
        """The user whose token the caller may issue or revoke: never one with rights the caller lacks."""
        user = self._user(username)
        reason = token_refusal(request.user, user)
        if reason is not None:
            raise PermissionDenied(reason)
        return user

    @extend_schema(responses={200: TokenInfoSerializer})
    def get(self, request: Request, username: str) -> Response:
        """Any user's token details (never the key)."""
        token = current_token(self._user(username))
        if token is None:
            raise NotFound(f"{username} has no API token.")
        return Response(TokenInfoSerializer(token).data)

    @extend_schema(request=None, responses={200: NewTokenSerializer})
    def post(self, request: Request, username: str) -> Response:
        """A new token for the user, replacing any old one; the key is in this response only."""
        return new_token_response(self._managed_user(request, username))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, username: str) -> Response:
        """Revoke the user's token."""
        if not revoke_token(self._managed_user(request, username)):
            raise NotFound(f"{username} has no API token.")
        return Response(status=status.HTTP_204_NO_CONTENT)
