from django.contrib import admin

from rewardmodel.models import RewardModelLog, RewardModelRun


class RewardModelLogInline(admin.TabularInline):
    model = RewardModelLog
    extra = 0
    can_delete = False
    readonly_fields = ("step", "metrics", "created_at")


@admin.register(RewardModelRun)
class RewardModelRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "backbone", "judgments_count", "pairs_count", "created_by", "created_at")
    list_filter = ("status",)
    readonly_fields = (
        "judgments_count",
        "judgments_hash",
        "pairs_count",
        "started_at",
        "finished_at",
        "step",
        "total_steps",
        "metrics",
        "artifact_path",
        "error",
    )
    filter_horizontal = ("batches",)
    inlines = [RewardModelLogInline]
