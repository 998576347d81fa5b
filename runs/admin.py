"""Admin pieces every training run shares."""

from django.contrib import admin

# What a worker writes on every run; the reward-model and policy admins use these.
TRAINING_RUN_READONLY_FIELDS = ("started_at", "finished_at", "step", "total_steps", "metrics", "artifact_path", "error")


class TrainingLogInline(admin.TabularInline):
    extra = 0
    can_delete = False
    readonly_fields = ("step", "metrics", "created_at")
