"""Read models that the annotator's pages and the API both show: one definition, so the two never disagree.

A HIT's sample is drawn "on screen": responses in the order the annotator sees them ("AI Response 1" may be
the item's response 2) and the rating toward screen response 2. Which side was swapped never leaves the server.
A ranking sample shows its K responses as A, B, C, ... in the slot's shuffled display order, and its orders as
screen tiers (1 = "A"); the item's own numbering never leaves the server either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Exists, JSONField, OuterRef, QuerySet, Subquery

from annotate.models import Hit, HitSlot, Judgment
from rlhf.rankings import Tiers, letters_of


@dataclass(frozen=True)
class ShownResponse:
    """One response of a ranking sample as shown: its letter (A for the first shown) and text."""

    letter: str
    text: str


@dataclass(frozen=True)
class ScreenSample:
    """One sample of a HIT as the annotator sees it."""

    position: int
    earlier_turns: list[dict]  # messages {role, content} before the instruction
    instruction: str
    input: str  # the instruction's optional input
    response_1: str  # shown as "AI Response 1"
    response_2: str  # shown as "AI Response 2"
    rating: int | None  # the rating given so far, toward screen response 2
    time_ms: int  # time spent on the sample so far
    marked: bool  # answered: rated (pairwise), or a complete order saved (ranking)
    kind: str = "pairwise"  # Batch.Kind: "pairwise" or "ranking"
    # Ranking samples only (response_1/response_2 are empty there and rating is None):
    responses: list[ShownResponse] = field(default_factory=list)  # the K responses as shown: A, B, C, ...
    ranking: Tiers | None = None  # the saved (complete) order, screen tiers best first
    ranking_letters: str = ""  # the saved order as letters: "B A D C"
    draft_ranking: Tiers | None = None  # an order still being typed, screen tiers; None when there is none

    @property
    def is_ranking(self) -> bool:
        return self.kind == "ranking"


def screen_sample(slot: HitSlot, judgment: Judgment | None) -> ScreenSample:
    """`slot` as drawn on screen, with the annotator's own `judgment` of its item (None when not rated yet)."""
    item = slot.item
    if slot.display_order:
        ranking = None if judgment is None or judgment.ranking is None else slot.to_screen_tiers(judgment.ranking)
        return ScreenSample(
            position=slot.position,
            earlier_turns=item.earlier_turns,
            instruction=item.instruction,
            input=item.prompt_input,
            response_1="",
            response_2="",
            rating=None,
            time_ms=0 if judgment is None else judgment.time_ms,
            marked=ranking is not None,
            kind="ranking",
            responses=[ShownResponse(letter, text) for letter, text in slot.shown_responses()],
            ranking=ranking,
            ranking_letters=letters_of(ranking) if ranking is not None else "",
            draft_ranking=slot.draft_ranking,
        )
    rating = None if judgment is None else slot.to_screen_rating(judgment.rating)
    return ScreenSample(
        position=slot.position,
        earlier_turns=item.earlier_turns,
        instruction=item.instruction,
        input=item.prompt_input,
        response_1=slot.shown_response(1),
        response_2=slot.shown_response(2),
        rating=rating,
        time_ms=0 if judgment is None else judgment.time_ms,
        marked=rating is not None,
    )


def own_judgments(hit: Hit) -> QuerySet[Judgment]:
    """The HIT annotator's judgments of the HIT's items (an item counts as rated whichever HIT it was rated in)."""
    return Judgment.objects.filter(annotator_id=hit.annotator_id, item_id__in=hit.slots.values("item_id"))


def _slots_with_own_judgment(hit: Hit) -> QuerySet[HitSlot]:
    """The HIT's slots with the annotator's rating or ranking and time per item (None when not judged): one query."""
    own = Judgment.objects.filter(item_id=OuterRef("item_id"), annotator_id=hit.annotator_id)
    return hit.slots.annotate(
        own_rating=Subquery(own.values("rating")[:1]),
        own_ranking=Subquery(own.values("ranking")[:1], output_field=JSONField()),
        own_time_ms=Subquery(own.values("time_ms")[:1]),
    ).order_by("position")


def _screen_sample_of(slot: HitSlot) -> ScreenSample:
    if slot.own_rating is None and slot.own_ranking is None:
        return screen_sample(slot, None)
    judgment = Judgment(rating=slot.own_rating, ranking=slot.own_ranking, time_ms=slot.own_time_ms)
    return screen_sample(slot, judgment)


def screen_samples(hit: Hit) -> list[ScreenSample]:
    """Every sample of the HIT, in position order (one query)."""
    return [_screen_sample_of(slot) for slot in _slots_with_own_judgment(hit).select_related("item")]


def screen_sample_at(hit: Hit, position: int) -> ScreenSample:
    """The HIT's sample at `position` (one query); HitSlot.DoesNotExist when there is none."""
    return _screen_sample_of(_slots_with_own_judgment(hit).select_related("item").get(position=position))


@dataclass(frozen=True)
class HitProgress:
    """Which of a HIT's samples are marked (rated), in position order."""

    marked: dict[int, bool]  # position -> rated, ordered by position

    @property
    def positions(self) -> list[int]:
        return list(self.marked)

    @property
    def total(self) -> int:
        return len(self.marked)

    @property
    def completed(self) -> int:
        return sum(self.marked.values())

    @property
    def all_marked(self) -> bool:
        return self.completed == self.total

    def first_unmarked(self, besides: int | None = None) -> int | None:
        """The first un-marked sample in order, other than `besides` (the one on screen).

        This is where M goes: annotators who skipped sample 2 expect M on sample 3 to take them back to 2, as the
        lecture's help text ("returns you back to the next un-marked sample") says.
        """
        return next((p for p, marked in self.marked.items() if not marked and p != besides), None)


def hit_progress(hit: Hit) -> HitProgress:
    """How far the annotator is with the HIT: reads positions and judged item ids only, no texts."""
    judged = Exists(Judgment.objects.filter(item_id=OuterRef("item_id"), annotator_id=hit.annotator_id))
    slots = hit.slots.annotate(judged=judged).order_by("position").values_list("position", "judged")
    return HitProgress(marked=dict(slots))
