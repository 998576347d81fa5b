from django.contrib import admin

from policy.models import PolicyLog, PolicyRun, PolicySample
from runs.admin import TRAINING_RUN_READONLY_FIELDS, TrainingLogInline


class PolicyLogInline(TrainingLogInline):
    model = PolicyLog


@admin.register(PolicyRun)
class PolicyRunAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "reward_run", "base_label", "step", "total_steps", "created_at")
    list_filter = ("kind", "status")
    raw_id_fields = ("reward_run", "base_run", "data_batch", "annotation_batch")
    readonly_fields = (*TRAINING_RUN_READONLY_FIELDS, "eval_samples")
    inlines = [PolicyLogInline]


@admin.register(PolicySample)
class PolicySampleAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "step", "kind", "reward")
    list_filter = ("kind",)
    raw_id_fields = ("run",)
