from django.urls import path

from rewardmodel import ordering_views

app_name = "ordering"
urlpatterns = [
    path("<int:pk>/", ordering_views.ordering_page, name="batch"),
    path("<int:pk>/save/", ordering_views.ordering_save, name="save"),
    path("<int:pk>/rescore/", ordering_views.ordering_rescore, name="rescore"),
]
