from django.urls import path

from annotate import ranking_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("hit/next/", views.start_next_hit, name="next_hit"),
    path("hit/<int:hit_id>/", views.hit_page, name="hit"),
    path("hit/<int:hit_id>/rate/", views.rate, name="hit_rate"),
    path("hit/<int:hit_id>/rank/", ranking_views.rank, name="hit_rank"),
    path("hit/<int:hit_id>/time/", views.record_time, name="hit_time"),
    path("hit/<int:hit_id>/submit/", views.submit, name="hit_submit"),
    path("hit/<int:hit_id>/done/", views.done, name="hit_done"),
]
