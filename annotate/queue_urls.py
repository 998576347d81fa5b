from django.urls import path

from annotate import queue_views

app_name = "queue"
urlpatterns = [
    path("", queue_views.queue_index, name="index"),
    path("<int:pk>/move/<str:direction>/", queue_views.move_batch, name="move"),
    path("<int:pk>/priority/", queue_views.set_priority, name="priority"),
    path("<int:pk>/active/", queue_views.set_active, name="active"),
]
