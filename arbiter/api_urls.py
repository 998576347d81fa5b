"""The REST API: one router for every app's viewsets, plus the OpenAPI schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import DefaultRouter

from accounts.api import OwnTokenView, UserTokenView
from annotate.api.annotators import AnnotatorViewSet
from annotate.api.batches import BatchViewSet, ImportJobViewSet
from annotate.api.exports import PreferenceExportView
from annotate.api.hits import HitViewSet
from annotate.api.items import ItemViewSet
from annotate.api.judgments import JudgmentViewSet
from arbiter.views import api_docs
from policy.api import PolicyRunViewSet
from rewardmodel.api import RewardModelRunViewSet, ScoreJobViewSet

router = DefaultRouter()
router.register("batches", BatchViewSet, basename="batch")
router.register("items", ItemViewSet, basename="item")
router.register("imports", ImportJobViewSet, basename="import-job")
router.register("judgments", JudgmentViewSet, basename="judgment")
router.register("hits", HitViewSet, basename="hit")
router.register("annotators", AnnotatorViewSet, basename="annotator")
router.register("reward-runs", RewardModelRunViewSet, basename="reward-run")
router.register("policy-runs", PolicyRunViewSet, basename="policy-run")
router.register("score-jobs", ScoreJobViewSet, basename="score-job")

urlpatterns = [
    path("", include(router.urls)),
    path("exports/preferences/", PreferenceExportView.as_view(), name="export-preferences"),
    path("auth/token/", OwnTokenView.as_view(), name="api-token"),
    path("auth/tokens/<str:username>/", UserTokenView.as_view(), name="api-user-token"),
    # Signed-in users only, like everything else here ("anonymous nothing").
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="api-schema"),
    path("docs/", api_docs, name="api-docs"),  # visitors in a browser are sent to the login page
]
