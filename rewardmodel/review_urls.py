from django.urls import path

from rewardmodel import review_views

app_name = "review"
urlpatterns = [
    path("", review_views.review_index, name="index"),
    path("score/", review_views.review_score, name="score"),
    path("judgment/<int:pk>/<str:action>/", review_views.review_judgment, name="judgment"),
]
