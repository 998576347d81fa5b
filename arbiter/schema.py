"""The OpenAPI schema tells the truth: every status code an operation can answer is documented.

DRF answers errors the same way on every endpoint (authentication, permissions, unknown objects, bad input), so
they are documented here once instead of on every view: `ArbiterAutoSchema` (REST_FRAMEWORK's
DEFAULT_SCHEMA_CLASS) adds them to each operation, and views document only what is their own (201, 204, a 400
with its own shape). `any_of_for_roles` (a postprocessing hook) makes the role-dependent response components
`anyOf`: a staff object also holds every field an annotator sees, so `oneOf` would reject it.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

# Suffix of the components documented with PolymorphicProxySerializer: what staff see, or what annotators see.
ROLE_COMPONENT_SUFFIX = "ForRole"


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong.")


VALIDATION_ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description=(
        "The request was refused: field name → list of messages (`non_field_errors` for the whole request), "
        "or `detail` for a body that could not be read."
    ),
)
NOT_AUTHENTICATED = OpenApiResponse(ErrorDetailSerializer, description="No valid token or session.")
FORBIDDEN = OpenApiResponse(ErrorDetailSerializer, description="Signed in, but not allowed to do this.")
NOT_FOUND = OpenApiResponse(
    ErrorDetailSerializer,
    description=(
        "No such object (or not yours to see), or a page past the last. A path that matches no route at all "
        "(an id that is not a number) gets the web server's own 404 page, HTML."
    ),
)
UNSUPPORTED_MEDIA_TYPE = OpenApiResponse(ErrorDetailSerializer, description="A body of a type this does not read.")
BODY_METHODS = {"POST", "PUT", "PATCH"}


class ArbiterAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the error responses DRF gives on every endpoint."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        parameters = operation.get("parameters", [])
        standard = {"401": NOT_AUTHENTICATED, "403": FORBIDDEN}
        has_query = any(parameter["in"] == "query" for parameter in parameters)
        if self.method in BODY_METHODS or has_query:
            standard["400"] = VALIDATION_ERROR
        # A path parameter names an object that may not exist; a `page` may be past the last one.
        if any(parameter["in"] in {"path"} or parameter["name"] == "page" for parameter in parameters):
            standard["404"] = NOT_FOUND
        if self.method in BODY_METHODS:
            standard["415"] = UNSUPPORTED_MEDIA_TYPE
        for code, response in standard.items():
            documented = self._get_response_for_code(response, code)
            if code not in responses:
                responses[code] = documented
            elif "content" not in responses[code]:
                # A view's own description of the code (when it happens), with DRF's body.
                responses[code]["content"] = documented["content"]
        if any(parameter["in"] == "path" for parameter in parameters):
            # Django's resolver, not DRF, answers a path whose id is not a number.
            responses["404"]["content"]["text/html"] = {"schema": {"type": "string"}}
        operation["responses"] = dict(sorted(responses.items()))
        return operation


def any_of_for_roles(result: dict, generator, request, public) -> dict:
    """Role-dependent components validate as either role's object (see the module docstring)."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith(ROLE_COMPONENT_SUFFIX) and "oneOf" in component:
            component["anyOf"] = component.pop("oneOf")
    return result
