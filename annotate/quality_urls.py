from django.urls import path

from annotate import quality_views

app_name = "quality"
urlpatterns = [
    path("", quality_views.quality_index, name="index"),
    path("batch/<int:pk>/", quality_views.batch_detail, name="batch"),
    path("annotator/<int:user_id>/", quality_views.annotator_detail, name="annotator"),
    path("export/", quality_views.export, name="export"),
]
