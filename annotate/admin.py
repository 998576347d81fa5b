from django.contrib import admin

from annotate.models import Batch, Hit, HitSlot, Item, Judgment


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "samples_per_hit", "overlap", "created_at"]
    list_filter = ["active"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "batch", "gold", "created_at"]
    list_filter = ["batch"]
    search_fields = ["external_id"]


class HitSlotInline(admin.TabularInline):
    model = HitSlot
    extra = 0
    raw_id_fields = ["item"]


@admin.register(Hit)
class HitAdmin(admin.ModelAdmin):
    list_display = ["pk", "annotator", "batch", "created_at", "submitted_at"]
    list_filter = ["batch"]
    inlines = [HitSlotInline]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["item", "annotator", "rating", "swapped", "time_ms", "updated_at"]
    list_filter = ["item__batch", "rating"]
    raw_id_fields = ["item", "hit"]
