from django.contrib import admin

from rewardmodel.models import RewardModelLog, RewardModelRun

# What a worker writes on every run; the policy app's admin uses these too.
TRAINING_RUN_READONLY_FIELDS = ("started_at", "finished_at", "step", "total_steps", "metrics", "artifact_path", "error")


class TrainingLogInline(admin.TabularInline):
    extra = 0
    can_delete = False
    readonly_fields = ("step", "metrics", "created_at")


class RewardModelLogInline(TrainingLogInline):
    model = RewardModelLog


@admin.register(RewardModelRun)
class RewardModelRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "backbone", "judgments_count", "pairs_count", "created_by", "created_at")
    list_filter = ("status",)
    readonly_fields = ("judgments_count", "judgments_hash", "pairs_count", *TRAINING_RUN_READONLY_FIELDS)
    filter_horizontal = ("batches",)
    inlines = [RewardModelLogInline]
