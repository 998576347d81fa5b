from django.urls import path

from policy import views

app_name = "policy"
urlpatterns = [
    path("", views.run_list, name="run_list"),
    path("new/", views.run_new, name="run_new"),
    path("new/sft/", views.run_new_sft, name="run_new_sft"),
    path("new/base-checkpoints/", views.base_checkpoints, name="base_checkpoints"),
    path("new/dpo/", views.run_new_dpo, name="run_new_dpo"),
    path("<int:pk>/", views.run_detail, name="run_detail"),
    path("<int:pk>/live/", views.run_live, name="run_live"),
    path("<int:pk>/samples/", views.run_samples, name="run_samples"),
    path("<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("<int:pk>/resume/", views.run_resume, name="run_resume"),
    path("<int:pk>/download/", views.run_download, name="run_download"),
    path("<int:pk>/download/<str:name>/", views.run_download, name="run_download_checkpoint"),
    path("<int:pk>/send/", views.run_send, name="run_send"),
    path("<int:pk>/human/", views.run_human, name="run_human"),
    path("<int:pk>/simulate/", views.run_simulate, name="run_simulate"),
    path("lineage/<str:kind>/<int:pk>/", views.lineage, name="lineage"),
]
