"""Batches of comparisons, the HITs that hand them out, and the judgments people make.

A judgment is always stored in the item's own orientation: "response 1" is
`Item.response_1` whatever side the annotator saw it on.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotate.rendering import visible_controls
from rlhf.active import UNSCORED
from rlhf.preferences import strength_of, winner_of
from rlhf.prompts import MessageError, check_messages, join_input
from rlhf.rankings import (
    LETTERS,
    MAX_RANKING_SIZE,
    MIN_RANKING_SIZE,
    Tiers,
    order_text,
    to_item_tiers,
    to_screen_tiers,
)
from runs.models import QueuedJob


class Rating(models.IntegerChoices):
    """The lecture's four-level scale, as a number toward response 2."""

    RESPONSE_1_BETTER = -2, "Response 1 is better."
    RESPONSE_1_SLIGHTLY = -1, "Response 1 is only slightly better. (only pick this if it's truly close)"
    RESPONSE_2_SLIGHTLY = 1, "Response 2 is only slightly better. (only pick this if it's truly close)"
    RESPONSE_2_BETTER = 2, "Response 2 is better."

    @classmethod
    def from_choice(cls, chosen: int, strength: str = "clear") -> Rating:
        """The rating for 'response `chosen` (1 or 2) wins, clearly or slightly'."""
        magnitude = 2 if strength == "clear" else 1
        return cls(magnitude if chosen == 2 else -magnitude)


# Model-ordered assignment's sort key: unscored items (uncertainty null) first, then the least certain. The query and
# the index item_uncertainty_in_batch use this one expression, so the database can walk the index. The rule is
# rlhf.active.uncertainty_key's.
UNSCORED_FIRST = Coalesce(models.F("uncertainty"), models.Value(UNSCORED))

# The order in which assignment hands out batches (and the staff Queue page shows them).
QUEUE_ORDER = ("-priority", "created_at", "pk")


class BatchQuerySet(models.QuerySet):
    def in_queue_order(self) -> BatchQuerySet:
        return self.order_by(*QUEUE_ORDER)

    def top_priority(self) -> int:
        """A priority above every active batch's: what a batch that should be judged next gets."""
        highest = self.filter(active=True).aggregate(highest=models.Max("priority"))["highest"]
        return 1 if highest is None else highest + 1


# A new batch's bounds, for the admin, the API, the import form and the command alike (validators below).
MAX_GUIDELINES_CHARS = 20_000
MAX_OVERLAP = 50
MAX_SAMPLES_PER_HIT = 200


class Batch(models.Model):
    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise (two responses, the four-level scale)"
        RANKING = "ranking", "Ranking (3 to 9 responses, best first)"

    class AssignmentOrder(models.TextChoices):
        IMPORT = "import", "Import order"
        UNCERTAINTY = "uncertainty", "Reward model: least certain first"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PAIRWISE)
    ranking_size = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_RANKING_SIZE), MaxValueValidator(MAX_RANKING_SIZE)],
        help_text="Ranking batches: how many responses every item has (empty: set per item, 3 to 9).",
    )
    allow_ties = models.BooleanField(default=False, help_text="Ranking batches: annotators may rank responses equal.")
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to annotators.")
    # The bounds are validators, so the admin's form, the API's serializer and full_clean() refuse the same values
    # (the column's own range comes with them: Django adds it to every integer field).
    samples_per_hit = models.PositiveSmallIntegerField(
        default=6,
        validators=[
            MinValueValidator(1, "A HIT needs at least one sample."),
            MaxValueValidator(MAX_SAMPLES_PER_HIT, f"At most {MAX_SAMPLES_PER_HIT} samples per HIT."),
        ],
    )
    overlap = models.PositiveSmallIntegerField(
        default=1,
        validators=[
            MinValueValidator(1, "Each item needs at least one annotator."),
            MaxValueValidator(MAX_OVERLAP, f"At most {MAX_OVERLAP} annotators per item."),
        ],
        help_text="How many annotators should judge each item.",
    )
    gold_rate = models.FloatField(
        default=0.0,
        validators=[
            MinValueValidator(0.0, "A share between 0 and 1."),
            MaxValueValidator(1.0, "A share between 0 and 1."),
        ],
        help_text="Share of each HIT drawn from the batch's gold items (0 to 1).",
    )
    active = models.BooleanField(default=True, help_text="Annotators get items only from active batches.")
    priority = models.IntegerField(
        default=0, help_text="Active batches are handed out highest priority first, then oldest first."
    )
    # Model-ordered assignment: which items a HIT takes first. The reward model that scores them (and when it
    # rescores) is chosen in rewardmodel (BatchOrdering): annotate only reads the stored Item.uncertainty.
    assignment_order = models.CharField(max_length=12, choices=AssignmentOrder.choices, default=AssignmentOrder.IMPORT)
    exploration_share = models.FloatField(
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Model-ordered batches: share of items handed out at random instead of least certain first.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    objects = BatchQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "batches"
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return visible_controls(self.name)  # users choose names: shown as the HIT's texts are (admin, forms)

    @property
    def is_ranking(self) -> bool:
        return self.kind == self.Kind.RANKING


class Item(models.Model):
    """One comparison: a prompt and K responses to it (K = 2 for pairwise batches, 3 to 9 for ranking batches)."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200)
    # Chat messages [{"role": "user"|"assistant"|"system", "content": str}, ...];
    # the last user message is the instruction shown to annotators.
    prompt = models.JSONField()
    # The optional "Input" of a one-shot instruction (AlpacaFarm), kept apart for display.
    prompt_input = models.TextField(blank=True)
    response_1 = models.TextField()
    response_2 = models.TextField()
    # Responses 3..K of a ranking item; empty for a pairwise item, so every pairwise item stays as it was.
    more_responses = models.JSONField(default=list, blank=True)
    source = models.JSONField(default=dict, blank=True)
    # Known answer (a rating, item orientation), e.g. from an imported preference data set.
    gold = models.SmallIntegerField(choices=Rating.choices, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # How unsure the reward model of the batch's ordering is about this item: |r(y1) - r(y2)|, or for a ranking the
    # smallest gap between neighbouring rewards (smaller = less sure). Null: not scored yet.
    uncertainty = models.FloatField(null=True, blank=True, editable=False)
    # Assignment state, kept by database triggers on every judgment written or deleted (migration 0005), so that
    # picking work never recounts: judgments of the item, and whether it still has fewer than its batch's overlap.
    # `is_open` only narrows the search (a partial index); the overlap check itself stays exact.
    judgment_count = models.PositiveIntegerField(default=0, editable=False)
    is_open = models.BooleanField(default=True, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["batch", "external_id"], name="item_external_id_unique")]
        indexes = [
            # Model-ordered assignment walks a batch's open items unscored first, then least certain first. An
            # expression, not NULLS FIRST: SQLite cannot index NULLS FIRST, and uncertainty is never negative.
            models.Index(
                models.F("batch"),
                UNSCORED_FIRST,
                models.F("id"),
                condition=models.Q(is_open=True),
                name="item_uncertainty_in_batch",
            ),
            models.Index(fields=["batch", "id"], condition=models.Q(is_open=True), name="item_open_in_batch"),
            models.Index(fields=["batch", "id"], condition=models.Q(gold__isnull=False), name="item_gold_in_batch"),
        ]

    def __str__(self) -> str:
        return visible_controls(f"{self.batch.name}/{self.external_id}")

    @property
    def messages(self) -> list[dict]:
        """The prompt's messages. One stored in another shape (saved before the admin checked items as imports are
        checked) is its JSON text as one user turn: shown to the annotator as it is, never a 500 that blocks them."""
        try:
            return check_messages(self.prompt, last_role="user")
        except MessageError:
            text = self.prompt if isinstance(self.prompt, str) else json.dumps(self.prompt, ensure_ascii=False)
            return [{"role": "user", "content": text}]

    @property
    def earlier_turns(self) -> list[dict]:
        """Every message before the final instruction (a multi-turn transcript)."""
        return self.messages[:-1]

    @property
    def instruction(self) -> str:
        return self.messages[-1]["content"]

    def chat_messages(self) -> list[dict]:
        """The prompt as a model sees it: the input joined to the last user turn."""
        return join_input(self.messages, self.prompt_input)

    @property
    def responses(self) -> list[str]:
        """All K responses in the item's own order: response number n is `responses[n - 1]`."""
        return [self.response_1, self.response_2, *self.more_responses]

    @property
    def response_count(self) -> int:
        return 2 + len(self.more_responses)

    def response(self, number: int) -> str:
        if number == 1:
            return self.response_1
        if number == 2:
            return self.response_2
        return self.more_responses[number - 3]

    @property
    def gold_chosen(self) -> int | None:
        return None if self.gold is None else (2 if self.gold > 0 else 1)


IDLE_MARGIN = timedelta(minutes=1)


class HitQuerySet(models.QuerySet):
    def open(self) -> HitQuerySet:
        return self.filter(submitted_at__isnull=True)

    def live(self) -> HitQuerySet:
        """Unsubmitted HITs whose annotator was active within the timeout."""
        cutoff = timezone.now() - timedelta(minutes=settings.HIT_TIMEOUT_MINUTES)
        return self.open().filter(last_activity_at__gte=cutoff)


class Hit(models.Model):
    """One annotator's unit of work: N items of one batch, in order."""

    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hits")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="hits")
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Set once the HIT has been idle past the timeout: only then can its samples have been given back, so only
    # then does rating one need the given-back check.
    was_idle = models.BooleanField(default=False, editable=False)

    objects = HitQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # Open HITs are few however many were submitted: assignment counts live slots through this index.
        indexes = [
            models.Index(fields=["last_activity_at"], condition=models.Q(submitted_at__isnull=True), name="hit_open")
        ]

    def __str__(self) -> str:
        return f"HIT {self.pk} ({self.annotator})"

    @property
    def is_submitted(self) -> bool:
        return self.submitted_at is not None

    def ordered_slots(self) -> list[HitSlot]:
        return list(self.slots.select_related("item").order_by("position"))

    def may_have_given_back(self) -> bool:
        """False when the HIT has been live all along, so none of its samples can have gone to others."""
        cutoff = timezone.now() - timedelta(minutes=settings.HIT_TIMEOUT_MINUTES)
        return self.was_idle or self.last_activity_at < cutoff

    def touch(self) -> None:
        self.was_idle = self.may_have_given_back()
        self.last_activity_at = timezone.now()
        Hit.objects.filter(pk=self.pk).update(**Hit.touched(self.last_activity_at))

    @staticmethod
    def touched(now: datetime) -> dict:
        """The UPDATE that marks activity at `now`, remembering in the same statement whether the HIT was idle."""
        # A minute's margin: a HIT this close to the timeout may be seen as idle by an assignment running while
        # this touch is still uncommitted, so it counts as having been idle.
        cutoff = now - timedelta(minutes=settings.HIT_TIMEOUT_MINUTES) + IDLE_MARGIN
        return {
            "last_activity_at": now,
            "was_idle": models.Case(
                models.When(last_activity_at__lt=cutoff, then=models.Value(True)), default=models.F("was_idle")
            ),
        }


class HitSlot(models.Model):
    """An item's place in a HIT, and which side its responses were shown on."""

    hit = models.ForeignKey(Hit, on_delete=models.CASCADE, related_name="slots")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="slots")
    position = models.PositiveSmallIntegerField()
    # True: the screen's "AI Response 1" is the item's response_2.
    swapped = models.BooleanField(default=False)
    # Ranking items: the item's response numbers in the order shown (A, B, C, ...), shuffled per annotator and item.
    display_order = models.JSONField(default=list, blank=True)
    # Ranking items: an order still being typed (screen tiers of positions, best first); it becomes the judgment
    # when it covers every response, and is kept across reloads until then.
    draft_ranking = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["hit", "position"], name="slot_position_unique"),
            models.UniqueConstraint(fields=["hit", "item"], name="slot_item_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.hit} sample {self.position}"

    def shown_response(self, screen_number: int) -> str:
        """The text shown as 'AI Response <screen_number>'."""
        item_number = (3 - screen_number) if self.swapped else screen_number
        return self.item.response(item_number)

    def to_item_rating(self, screen_rating: int) -> int:
        return -screen_rating if self.swapped else screen_rating

    def to_screen_rating(self, item_rating: int) -> int:
        return -item_rating if self.swapped else item_rating

    def shown_responses(self) -> list[tuple[str, str]]:
        """Ranking items: (letter, text) of each response in the order shown."""
        return [(LETTERS[index], self.item.response(number)) for index, number in enumerate(self.display_order)]

    def to_item_tiers(self, screen_tiers: Tiers) -> Tiers:
        return to_item_tiers(screen_tiers, self.display_order)

    def to_screen_tiers(self, item_tiers: Tiers) -> Tiers:
        return to_screen_tiers(item_tiers, self.display_order)


# The group of the simulated annotators (annotate.simulation): their judgments are marked as such on the pages and in
# exports, and left out of exports and reward-model training unless asked for.
SIMULATED_GROUP = "simulated annotators"


def simulated_user_ids() -> set[int]:
    from django.contrib.auth import get_user_model  # the user model is not ready while this module loads

    return set(get_user_model().objects.filter(groups__name=SIMULATED_GROUP).values_list("pk", flat=True))


class JudgmentQuerySet(models.QuerySet):
    def kept(self) -> JudgmentQuerySet:
        """Judgments not marked wrong by staff: what exports and reward-model training use."""
        return self.filter(excluded_at__isnull=True)

    def by_people(self) -> JudgmentQuerySet:
        """Leaves out the simulated annotators' judgments."""
        return self.exclude(annotator__groups__name=SIMULATED_GROUP)

    def simulated(self) -> JudgmentQuerySet:
        return self.filter(annotator__groups__name=SIMULATED_GROUP)


class Judgment(models.Model):
    """One annotator's rating (pairwise item) or ranking (ranking item) of one item, in the item's own orientation."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments")
    hit = models.ForeignKey(Hit, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgments")
    rating = models.SmallIntegerField(choices=Rating.choices, null=True, blank=True)
    # Ranking items: tiers of the item's response numbers, best first (rlhf.rankings); ties only if the batch allows.
    ranking = models.JSONField(null=True, blank=True)
    swapped = models.BooleanField(default=False, help_text="Responses were shown in swapped order.")
    # Ranking items: the item's response numbers in the order they were shown (A, B, C, ...), for position-bias checks.
    display_order = models.JSONField(default=list, blank=True)
    # Wide, and capped at MAX_ITEM_SECONDS by annotate.services: a 32-bit column once overflowed from repeated reports.
    time_ms = models.PositiveBigIntegerField(default=0, help_text="Time spent on the item.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Review (annotate.review): staff may mark a judgment wrong (left out of exports and training until unmarked)
    # or confirm it. Set with update(), so updated_at stays the annotator's last change.
    excluded_at = models.DateTimeField(null=True, blank=True, editable=False)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    exclusion_note = models.TextField(blank=True, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    objects = JudgmentQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="judgment_unique_per_annotator"),
            models.CheckConstraint(
                condition=models.Q(rating__isnull=False, ranking__isnull=True)
                | models.Q(rating__isnull=True, ranking__isnull=False),
                name="judgment_rating_xor_ranking",
            ),
        ]

    def __str__(self) -> str:
        if self.ranking is not None:
            return f"{self.annotator} on {self.item}: ranking {self.ranking}"
        return f"{self.annotator} on {self.item}: {self.rating:+d}"

    @property
    def is_ranking(self) -> bool:
        return self.ranking is not None

    @property
    def ranking_text(self) -> str:
        """The ranking as the letters of the item's responses (A = response 1), best first: "B > A > D > C"."""
        return order_text(self.ranking) if self.ranking is not None else ""

    @property
    def chosen(self) -> int:
        """Which response (1 or 2, item orientation) won."""
        return winner_of(self.rating)

    @property
    def rejected(self) -> int:
        return 3 - self.chosen

    @property
    def strength(self) -> str:
        return strength_of(abs(self.rating))

    @property
    def chosen_text(self) -> str:
        return self.item.response(self.chosen)

    @property
    def rejected_text(self) -> str:
        return self.item.response(self.rejected)

    @property
    def shown_first_chosen(self) -> bool:
        """True when the annotator picked the response shown on the left/top."""
        return self.chosen == (2 if self.swapped else 1)


class RenderedMarkdown(models.Model):
    """A text's markdown rendered once, keyed by a hash of the renderer's version and the text.

    Rendering a long response costs seconds; the HIT page redraws its sample on every rating click. Keyed by
    content, an edited item or a changed renderer simply misses and renders afresh.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    html = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.digest


class ImportJob(QueuedJob):
    """An uploaded comparisons file imported by a Celery task (annotate.tasks.run_import_job), with its progress.

    Sent through the runs' outbox (QueuedJob): a job started while the broker is down waits, queued, and the
    watchdog sends it once the broker is back."""

    task_name = "annotate.tasks.import_job"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        CHECKING = "checking", "Checking records"
        WRITING = "writing", "Writing items"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    FINISHED = (Status.DONE, Status.FAILED)

    batch_name = models.CharField(max_length=200)
    format = models.CharField(max_length=20, default="auto")
    as_judgments = models.BooleanField(default=False)
    allow_ties = models.BooleanField(default=False, help_text="Rankings: a new batch allows ties.")
    active = models.BooleanField(null=True, blank=True, help_text="Empty: the import's usual default.")
    # A new batch's guidelines, overlap and samples per HIT (annotate.importers.NEW_BATCH_SETTINGS), as given.
    batch_settings = models.JSONField(default=dict, blank=True)
    file_name = models.CharField(max_length=255, help_text="The uploaded file's name.")
    file_path = models.CharField(max_length=500, help_text="The upload, under IMPORT_DIR, until the job ends.")
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_done = models.PositiveIntegerField(default=0, help_text="Records checked (then written) so far.")
    items_created = models.PositiveIntegerField(default=0)
    judgments_created = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return visible_controls(f"Import {self.pk} of {self.file_name} into {self.batch_name}")

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
