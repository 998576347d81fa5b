from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.views import LoginView
from arbiter.views import favicon

urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("api/", include("arbiter.api_urls")),
    path("dashboard/reward/", include("rewardmodel.urls")),
    path("dashboard/policy/", include("policy.urls")),
    path("dashboard/quality/", include("annotate.quality_urls")),
    path("dashboard/queue/", include("annotate.queue_urls")),
    path("dashboard/ordering/", include("rewardmodel.ordering_urls")),
    path("dashboard/review/", include("rewardmodel.review_urls")),
    path("", include("annotate.urls")),
]
