from django.contrib import admin

from rewardmodel.models import RewardModelLog, RewardModelRun
from runs.admin import TRAINING_RUN_READONLY_FIELDS, TrainingLogInline


class RewardModelLogInline(TrainingLogInline):
    model = RewardModelLog


@admin.register(RewardModelRun)
class RewardModelRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "backbone", "judgments_count", "pairs_count", "created_by", "created_at")
    list_filter = ("status",)
    readonly_fields = ("judgments_count", "judgments_hash", "pairs_count", *TRAINING_RUN_READONLY_FIELDS)
    filter_horizontal = ("batches",)
    inlines = [RewardModelLogInline]
