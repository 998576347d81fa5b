from django.contrib import admin

from policy.models import PolicyLog, PolicyRun, PolicySample


class PolicyLogInline(admin.TabularInline):
    model = PolicyLog
    extra = 0
    can_delete = False
    readonly_fields = ("step", "metrics", "created_at")


@admin.register(PolicyRun)
class PolicyRunAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "reward_run", "base_label", "step", "total_steps", "created_at")
    list_filter = ("kind", "status")
    raw_id_fields = ("reward_run", "base_run", "data_batch", "annotation_batch")
    readonly_fields = (
        "started_at",
        "finished_at",
        "step",
        "total_steps",
        "metrics",
        "eval_samples",
        "artifact_path",
        "error",
    )
    inlines = [PolicyLogInline]


@admin.register(PolicySample)
class PolicySampleAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "step", "kind", "reward")
    list_filter = ("kind",)
    raw_id_fields = ("run",)
