from django.urls import path

from policy import views

app_name = "policy"
urlpatterns = [
    path("", views.run_list, name="run_list"),
]
