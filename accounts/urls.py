from django.urls import path

from accounts import views

urlpatterns = [
    path("token/", views.api_token, name="account-token"),
]
