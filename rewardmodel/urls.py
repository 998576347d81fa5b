from django.urls import path

from rewardmodel import views

app_name = "rewardmodel"
urlpatterns = [
    path("", views.run_list, name="run_list"),
    path("new/", views.run_new, name="run_new"),
    path("<int:pk>/", views.run_detail, name="run_detail"),
    path("<int:pk>/live/", views.run_live, name="run_live"),
    path("<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("<int:pk>/resume/", views.run_resume, name="run_resume"),
    path("<int:pk>/download/", views.run_download, name="run_download"),
    path("<int:pk>/score/", views.run_score, name="run_score"),
    path("<int:pk>/score/<int:job_id>/", views.score_job, name="score_job"),
]
