"""One function per annotator action, shared by the pages, the API and commands."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Least
from django.utils import timezone
from django.utils.translation import ngettext

from annotate.models import IDLE_MARGIN, UNSCORED_FIRST, Batch, Hit, HitSlot, Item, Judgment, Rating
from annotate.selectors import HitProgress, ScreenSample, hit_progress, screen_sample
from annotate.table_statistics import analyze_grown
from rlhf.active import exploration_places, exploration_start
from rlhf.rankings import RankingError, Tiers, check_tiers

# Rounds of locking when rows we locked turn out to be taken by a HIT committed meanwhile.
LOCK_ATTEMPTS = 5


class AnnotationError(Exception):
    """An action the annotator may not take (the message says why; `field` names the input at fault)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _count_subquery(queryset: QuerySet) -> Coalesce:
    counted = queryset.order_by().values("item").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _live_slots_waiting(item_ref: str = "pk") -> Coalesce:
    """Live HIT slots on the item whose annotator has not judged it yet: a count over a handful of rows.

    Live slots depend on the clock (HIT_TIMEOUT_MINUTES), so they are counted, not kept; the HitSlot item index
    makes it a look-up per candidate item, whatever the size of the batch.
    """
    cutoff = timezone.now() - timedelta(minutes=settings.HIT_TIMEOUT_MINUTES)
    judged_by_slot_owner = Judgment.objects.filter(
        item_id=OuterRef("item_id"), annotator_id=OuterRef("hit__annotator_id")
    )
    pending = HitSlot.objects.filter(
        item_id=OuterRef(item_ref),
        hit__submitted_at__isnull=True,
        hit__last_activity_at__gte=cutoff,
    ).filter(~Exists(judged_by_slot_owner))
    return _count_subquery(pending)


def annotate_taken(items: QuerySet[Item]) -> QuerySet[Item]:
    """Add `taken`: judgments so far (the kept counter) plus live HIT slots still waiting for a judgment."""
    return items.annotate(n_pending=_live_slots_waiting()).annotate(taken=F("judgment_count") + F("n_pending"))


def _not_judged_or_held_by(user, items: QuerySet[Item]) -> QuerySet[Item]:
    """Items `user` has neither judged nor holds in an unsubmitted HIT.

    NOT EXISTS probes per candidate item (the unique (item, annotator) judgment index, the HitSlot item index): the
    check costs the same whatever the annotator's history, and the planner keeps estimating the anti-joins well
    (scalar sub-selects instead made it expect one row and sort the whole batch: measured, 0.7 s at 10k items).
    """
    judged = Judgment.objects.filter(item_id=OuterRef("pk"), annotator_id=user.pk)
    held = HitSlot.objects.filter(item_id=OuterRef("pk"), hit__annotator_id=user.pk, hit__submitted_at__isnull=True)
    return items.filter(~Exists(judged), ~Exists(held))


def assignable_items(user, batch: Batch) -> QuerySet[Item]:
    """Items of `batch` this user has neither judged nor holds, that still need judgments, in order.

    Only open items are searched (the partial index item_open_in_batch, in id order): items with their full overlap
    of judgments leave the index as their last judgment is written, so the scan does not grow with the work done.
    """
    candidates = _not_judged_or_held_by(user, batch.items.filter(is_open=True))
    return annotate_taken(candidates).filter(taken__lt=batch.overlap).order_by("pk")


def current_hit(user) -> Hit | None:
    live = Hit.objects.live().filter(annotator=user).select_related("batch", "annotator")
    return live.order_by("created_at", "pk").first()


def assign_hit(user, batch: Batch | None = None) -> Hit | None:
    """Assignment: the annotator's current HIT, or a new one; None when no work is left for them.

    A new HIT comes from the first active batch, in queue order (priority, then oldest), with work left; with `batch`
    (the simulated annotators), from that batch only, and an open HIT of another batch is no work for it.

    One transaction that starts by locking the annotator's user row: requests of the same annotator
    arriving at once (a double click, ten tabs) queue behind each other, and each one after the first
    finds the HIT the first one made, so an annotator never holds two open HITs. Items are locked with
    SKIP LOCKED (PostgreSQL) so two annotators asking at the same moment never take the same slot; on
    SQLite the IMMEDIATE transaction mode serialises the whole function instead.
    """
    User = get_user_model()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).get()
        hit = current_hit(user)
        if hit is not None:
            return hit if batch is None or hit.batch_id == batch.pk else None
        batches = Batch.objects.filter(active=True)
        if batch is not None:
            batches = batches.filter(pk=batch.pk)
        for candidate in batches.in_queue_order():
            # No savepoint per batch: a batch that yields nothing has written nothing.
            hit = _assign_from_batch(user, candidate)
            if hit is not None:
                # New HITs grow the tables every annotator's statements read: keep their statistics up with them.
                transaction.on_commit(analyze_grown)
                return hit
    return None


def _assign_from_batch(user, batch: Batch) -> Hit | None:
    """A new HIT for `user` from `batch`, or None when the batch has no item left for them."""
    wanted = batch.samples_per_hit
    # Gold items (known answers) are mixed in at the batch's rate and shown to every
    # annotator regardless of overlap; they look like any other item.
    n_gold = round(batch.gold_rate * wanted) if batch.gold_rate > 0 else 0
    gold_ids = _unseen_gold_items(user, batch, n_gold) if n_gold else []
    regular = assignable_items(user, batch)
    if batch.gold_rate > 0:
        regular = regular.filter(gold__isnull=True)
    n_regular = wanted - len(gold_ids)
    item_ids: list[int] = []
    checked: list[int] = []
    for ordered, up_to in candidate_orders(batch, regular, n_regular, random):
        for _attempt in range(LOCK_ATTEMPTS):
            need = up_to - len(item_ids)
            if need <= 0:
                break
            locked = list(
                ordered.exclude(pk__in=checked)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", flat=True)[:need]
            )
            if not locked:
                break
            checked += locked
            # Re-count in a fresh statement: it sees HITs committed while we waited for the lock.
            still_free = set(
                annotate_taken(Item.objects.filter(pk__in=locked))
                .filter(taken__lt=batch.overlap)
                .values_list("pk", flat=True)
            )
            item_ids += [pk for pk in locked if pk in still_free]  # in the order chosen
    if not item_ids:
        return None  # gold alone is no work
    item_ids += gold_ids
    if gold_ids:
        random.shuffle(item_ids)
    hit = Hit.objects.create(annotator=user, batch=batch)
    sizes = _response_counts(item_ids) if batch.is_ranking else {}
    HitSlot.objects.bulk_create(
        HitSlot(
            hit=hit,
            item_id=item_id,
            position=position,
            swapped=random.random() < 0.5,
            display_order=random.sample(range(1, sizes[item_id] + 1), sizes[item_id]) if sizes else [],
        )
        for position, item_id in enumerate(item_ids, start=1)
    )
    return hit


def candidate_orders(
    batch: Batch, candidates: QuerySet[Item], wanted: int, rng: random.Random | ModuleType
) -> list[tuple[QuerySet[Item], int]]:
    """In which orders a new HIT takes its `wanted` regular items: (ordered candidates, fill up to this many) in turn.

    Import order: by primary key. Model-ordered ("uncertainty"): the rule of rlhf.active (`hand_out` runs the same
    rule on lists for bench/curve_active.py): `exploration_places` of the `wanted` places are filled from
    `exploration_start` onward in id order (wrapping round), the rest with unscored items first, then the smallest
    stored `Item.uncertainty`. Only the order changes: which candidates qualify, the locking and the overlap re-count
    stay the caller's.
    """
    if batch.assignment_order != Batch.AssignmentOrder.UNCERTAINTY:
        return [(candidates.order_by("pk"), wanted)]
    by_uncertainty = candidates.order_by(UNSCORED_FIRST, "pk")
    n_random = exploration_places(wanted, batch.exploration_share, rng)
    if n_random == 0:
        return [(by_uncertainty, wanted)]
    bounds = Item.objects.filter(batch=batch).aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return [(by_uncertainty, wanted)]  # an empty batch
    start = exploration_start(bounds["low"], bounds["high"], rng)
    return [
        (candidates.filter(pk__gte=start).order_by("pk"), n_random),
        (candidates.filter(pk__lt=start).order_by("pk"), n_random),
        (by_uncertainty, wanted),
    ]


def _response_counts(item_ids: list[int]) -> dict[int, int]:
    """How many responses each ranking item has (K), to shuffle the order they are shown in."""
    return {pk: 2 + len(more) for pk, more in Item.objects.filter(pk__in=item_ids).values_list("pk", "more_responses")}


def _unseen_gold_items(user, batch: Batch, count: int) -> list[int]:
    """Gold items of `batch` the user has neither judged nor been shown in any HIT (index item_gold_in_batch)."""
    judged = Judgment.objects.filter(item_id=OuterRef("pk"), annotator_id=user.pk)
    shown = HitSlot.objects.filter(item_id=OuterRef("pk"), hit__annotator_id=user.pk)
    gold = batch.items.filter(gold__isnull=False).filter(~Exists(judged), ~Exists(shown))
    candidates = list(gold.values_list("pk", flat=True))
    return random.sample(candidates, min(count, len(candidates)))


class SampleGivenBack(AnnotationError):
    """The sample's item went to other annotators while its HIT was idle past the timeout."""

    def __init__(self, position: int) -> None:
        super().__init__(
            f"Sample {position} was given back: this HIT was idle for over {settings.HIT_TIMEOUT_MINUTES} minutes "
            "and the sample went to another annotator. Your rating of it was not saved; rate the other samples "
            "and submit.",
            field="position",
        )


def given_back_slots(hit: Hit) -> QuerySet[HitSlot]:
    """The HIT's un-rated slots whose items went to others: over their overlap without this HIT's annotator.

    A slot is held while its HIT is live; once the HIT idles past the timeout its item may be handed out
    again, and only while the others' judgments and live slots still leave room is the item still this
    annotator's to rate. Gold items go to everyone whatever the overlap and are never given back.
    A HIT that has been live all along (`Hit.may_have_given_back`) has given nothing back: no query then.
    """
    if not hit.may_have_given_back():
        return hit.slots.none()
    batch = hit.batch
    cutoff = timezone.now() - timedelta(minutes=settings.HIT_TIMEOUT_MINUTES)
    annotator_id = hit.annotator_id
    judged_by_holder = Judgment.objects.filter(item_id=OuterRef("item_id"), annotator_id=OuterRef("hit__annotator_id"))
    held_by_others = (
        HitSlot.objects.filter(
            item_id=OuterRef("item_id"), hit__submitted_at__isnull=True, hit__last_activity_at__gte=cutoff
        )
        .exclude(hit__annotator_id=annotator_id)
        .filter(~Exists(judged_by_holder))
    )
    slots = hit.slots.filter(~Exists(Judgment.objects.filter(item_id=OuterRef("item_id"), annotator_id=annotator_id)))
    if batch.gold_rate > 0:
        slots = slots.filter(item__gold__isnull=True)
    # The annotator has not judged these items, so every judgment the item counts is someone else's.
    return (
        slots.annotate(n_held=_count_subquery(held_by_others))
        .annotate(taken_by_others=F("item__judgment_count") + F("n_held"))
        .filter(taken_by_others__gte=batch.overlap)
    )


def given_back_positions(hit: Hit) -> set[int]:
    return set(given_back_slots(hit).values_list("position", flat=True))


class OtherHitLive(AnnotationError):
    """The annotator took another HIT while this one was idle: reviving this one would give them two live HITs."""

    def __init__(self, other: Hit) -> None:
        super().__init__(
            f"This HIT was idle for over {settings.HIT_TIMEOUT_MINUTES} minutes and you have since started "
            f"HIT {other.pk}: finish and submit that one first, then come back to this one. "
            "This answer was not saved."
        )
        self.other = other


def _live_cutoff(now) -> object:
    """Active since this moment: live, with IDLE_MARGIN to spare (a HIT this close to the timeout may be seen as
    idle by an assignment running at the same moment, so it takes the revival check)."""
    return now - timedelta(minutes=settings.HIT_TIMEOUT_MINUTES) + IDLE_MARGIN


def _check_revival_if_idle(hit: Hit) -> None:
    """check_revival when the HIT, as stored now (not as the caller loaded it), is open and idle."""
    idle = Hit.objects.filter(pk=hit.pk, submitted_at__isnull=True, last_activity_at__lt=_live_cutoff(timezone.now()))
    if idle.exists():
        check_revival(hit.pk, hit.annotator_id)


def check_revival(hit_id: int, annotator_id: int) -> None:
    """Before an idle HIT is made live again by an answer: OtherHitLive when its annotator holds another live HIT.

    An annotator holds one live HIT at a time (assignment hands out a new one only when they have none); reviving
    an idle one next to the one they took meanwhile would break that. Locks the annotator's row, as assignment
    does, so no new HIT is made between the check and the answer; call it inside the answer's transaction,
    before the HIT's own row is locked (the order assignment uses: user, then HITs).
    """
    get_user_model().objects.select_for_update().filter(pk=annotator_id).values_list("pk", flat=True).get()
    other = Hit.objects.live().filter(annotator_id=annotator_id).exclude(pk=hit_id).order_by("pk").first()
    if other is not None:
        raise OtherHitLive(other)


def _countable_ms(elapsed_ms: int) -> int:
    """The part of one reported time that may count: never negative, never more than an item's whole allowance.

    Clamped, never refused: bookkeeping must not stop a rating from being saved.
    """
    return max(0, min(int(elapsed_ms), max_item_ms()))


def max_item_ms() -> int:
    return settings.MAX_ITEM_SECONDS * 1000


@dataclass(frozen=True)
class SavedRating:
    """What one rating click changed: the judgment as stored, and the HIT's progress after it."""

    hit: Hit
    position: int
    judgment: Judgment
    screen_rating: int  # toward screen response 2, as clicked
    progress: HitProgress
    sample: ScreenSample | None = None  # the sample as now shown, when asked for (with_item)
    # The first un-marked sample after this one (with_item): the page sends it along, so moving on costs no request.
    next_sample: ScreenSample | None = None

    @property
    def marked_positions(self) -> list[int]:
        return [position for position, marked in self.progress.marked.items() if marked]


def check_rating(screen_rating: int | None) -> None:
    """AnnotationError on `rating` unless it is a rating of the scale: the one check for pages, API and commands."""
    if screen_rating not in Rating.values:
        allowed = ", ".join(str(value) for value in Rating.values)
        raise AnnotationError(f"rating must be one of {allowed}.", field="rating")


def samples_missing(progress: HitProgress, given_back: set[int]) -> int:
    """Samples still to answer before the HIT can be submitted; given-back ones cannot be and do not hold it up."""
    return progress.total - progress.completed - len(given_back)


def rate_item(hit: Hit, position: int, screen_rating: int, elapsed_ms: int = 0) -> Judgment:
    """Save (or change) the rating the annotator clicked for sample `position` of `hit` (see rate_sample)."""
    return rate_sample(hit.pk, hit.annotator_id, position, screen_rating, elapsed_ms).judgment


@transaction.atomic
def rate_sample(
    hit_id: int,
    annotator_id: int,
    position: int,
    screen_rating: int | None,
    elapsed_ms: int = 0,
    with_item: bool = False,
) -> SavedRating:
    """Save (or change) the rating the annotator clicked for sample `position`.

    `screen_rating` is relative to what was on screen; it is stored in the item's
    orientation. Time on the item adds up over visits, up to MAX_ITEM_SECONDS.

    A HIT idle past the timeout may have lost samples to other annotators: rating such a sample is refused
    (SampleGivenBack); rating one that is still free keeps the rating and makes the HIT live again.

    Three statements on the common path: touch the HIT (which locks it), read its slots with the annotator's
    judgments of them (which is also the progress), write the judgment (a trigger counts it on the item).
    Hit.DoesNotExist when `annotator_id` has no HIT `hit_id`. `with_item` also reads the items, in the same
    statement, for a page that redraws the sample.
    """
    # Lock the HIT row only, by the UPDATE that touches it: locking its batch too made every rating in a batch queue
    # on one row and deadlock against assignment (bench/bench_concurrency.py). The lock also serialises this
    # annotator's ratings of the HIT, and every statement after it sees what the previous rating wrote.
    now = timezone.now()
    open_hit = Hit.objects.filter(pk=hit_id, annotator_id=annotator_id, submitted_at__isnull=True)
    touched = open_hit.filter(last_activity_at__gte=_live_cutoff(now)).update(**Hit.touched(now))
    if not touched:
        # Idle (or about to be), submitted, or not theirs: an idle HIT is revived only when it is their one live HIT.
        Hit.objects.get(pk=hit_id, annotator_id=annotator_id)  # Hit.DoesNotExist when it is not theirs
        if open_hit.exists():
            check_revival(hit_id, annotator_id)
            touched = open_hit.update(**Hit.touched(now))
        if not touched:
            raise AnnotationError("This HIT has been submitted; its answers can no longer change.")
    check_rating(screen_rating)
    own = Judgment.objects.filter(item_id=OuterRef("item_id"), annotator_id=annotator_id)
    slots = list(
        HitSlot.objects.filter(hit_id=hit_id)
        .select_related("hit", "hit__batch", *(["item"] if with_item else []))
        .annotate(own_judgment_id=Subquery(own.values("pk")[:1]), own_time_ms=Subquery(own.values("time_ms")[:1]))
        .order_by("position")
    )
    hit = slots[0].hit if slots else Hit.objects.select_related("batch").get(pk=hit_id)
    slot = next((slot for slot in slots if slot.position == position), None)
    if slot is None:
        raise AnnotationError(f"This HIT has no sample {position}.", field="position")
    if slot.display_order:
        raise AnnotationError(f"Sample {position} is a ranking: rank its responses instead.", field="rating")
    if hit.may_have_given_back():
        # Lock the item like assignment does, so it cannot be handed out between the check and the save.
        Item.objects.select_for_update().filter(pk=slot.item_id).values_list("pk", flat=True).get()
        if given_back_slots(hit).filter(pk=slot.pk).exists():
            raise SampleGivenBack(position)
    elapsed_ms = _countable_ms(elapsed_ms)
    rating = slot.to_item_rating(screen_rating)
    if slot.own_judgment_id is None:
        judgment = Judgment.objects.create(
            item_id=slot.item_id,
            annotator_id=annotator_id,
            hit=hit,
            rating=rating,
            swapped=slot.swapped,
            time_ms=elapsed_ms,
        )
    else:
        now = timezone.now()
        Judgment.objects.filter(pk=slot.own_judgment_id).update(
            rating=rating,
            time_ms=Least(F("time_ms") + elapsed_ms, Value(max_item_ms()), output_field=BigIntegerField()),
            updated_at=now,
        )
        judgment = Judgment(
            pk=slot.own_judgment_id,
            item_id=slot.item_id,
            annotator_id=annotator_id,
            rating=rating,
            swapped=slot.swapped,
            time_ms=min(slot.own_time_ms + elapsed_ms, max_item_ms()),
            updated_at=now,
        )
    marked = {other.position: other.own_judgment_id is not None or other.position == position for other in slots}
    progress = HitProgress(marked)
    next_position = progress.first_unmarked(besides=position)
    # Read by the same statement as the rest (with_item); un-marked, so not judged by this annotator.
    next_slot = next((other for other in slots if other.position == next_position), None)
    return SavedRating(
        hit=hit,
        position=position,
        judgment=judgment,
        screen_rating=screen_rating,
        progress=progress,
        sample=screen_sample(slot, judgment) if with_item else None,
        next_sample=screen_sample(next_slot, None) if with_item and next_slot is not None else None,
    )


def _slot_to_answer(hit: Hit, position: int) -> tuple[Hit, HitSlot]:
    """The locked HIT and its slot at `position`, when the annotator may still answer it; AnnotationError otherwise."""
    _check_revival_if_idle(hit)
    # Lock the HIT row only (of="self"): locking its batch too made every rating in a batch queue on one row and
    # deadlock against assignment (bench/bench_concurrency.py).
    hit = Hit.objects.select_for_update(of=("self",)).select_related("batch").get(pk=hit.pk)
    if hit.is_submitted:
        raise AnnotationError("This HIT has been submitted; its answers can no longer change.")
    try:
        slot = hit.slots.select_related("item").get(position=position)
    except HitSlot.DoesNotExist:
        raise AnnotationError(f"This HIT has no sample {position}.", field="position") from None
    # Lock the item like assignment does, so it cannot be handed out between the check and the save.
    Item.objects.select_for_update().filter(pk=slot.item_id).values_list("pk", flat=True).get()
    if given_back_slots(hit).filter(pk=slot.pk).exists():
        raise SampleGivenBack(position)
    return hit, slot


def check_screen_ranking(screen_tiers: object, size: int, allow_ties: bool) -> tuple[Tiers, bool]:
    """A ranking typed so far (tiers of screen positions 1..size, best first) and whether it is complete.

    A partial ranking lists some responses; one missing response is implied (it can only be last), so typing K-1
    letters completes the order. AnnotationError names what is wrong.
    """
    if not isinstance(screen_tiers, list) or any(not isinstance(tier, list) for tier in screen_tiers):
        raise AnnotationError("A ranking is a list of places, each a list of response positions.", field="ranking")
    listed = [position for tier in screen_tiers for position in tier]
    missing = [position for position in range(1, size + 1) if position not in listed]
    tiers = [list(tier) for tier in screen_tiers]
    if len(missing) == 1 and tiers:
        tiers.append(missing)  # the last one left is the worst
    complete = len(missing) <= 1 and bool(tiers)
    try:
        if complete:
            return check_tiers(tiers, size, allow_ties), True
        # A partial order: check it as a ranking of what it lists plus the rest as one (allowed) tie at the end.
        if tiers:  # an empty draft clears the order: nothing to check
            check_tiers([*tiers, missing], size, allow_ties=True)
        if not allow_ties and any(len(tier) > 1 for tier in tiers):
            raise RankingError("ties are not allowed in this batch")
    except RankingError as error:
        raise AnnotationError(f"Ranking: {error}.", field="ranking") from None
    return tiers, False


@transaction.atomic
def rank_item(hit: Hit, position: int, screen_tiers: object, elapsed_ms: int = 0) -> Judgment | None:
    """Save the order typed (or dragged) so far for ranking sample `position`; the judgment once it is complete.

    `screen_tiers` lists screen positions (1 = response "A") best first, ties as tiers of several. A partial order is
    kept on the slot (so a reload shows it); a complete one is stored as the judgment, in the item's own response
    numbers, together with the order the responses were shown in. An existing judgment stays until a new complete
    order replaces it, so unpicking an order never loses a saved judgment. Returns the judgment, or None while the
    order is still partial and no judgment exists.
    """
    hit, slot = _slot_to_answer(hit, position)
    if not slot.display_order:
        raise AnnotationError(f"Sample {position} is a pairwise comparison: rate it instead.", field="ranking")
    tiers, complete = check_screen_ranking(screen_tiers, len(slot.display_order), hit.batch.allow_ties)
    elapsed_ms = _countable_ms(elapsed_ms)
    existing = Judgment.objects.select_for_update().filter(item=slot.item, annotator=hit.annotator).first()
    if not complete:
        HitSlot.objects.filter(pk=slot.pk).update(draft_ranking=tiers)
        if existing is not None:
            existing.time_ms = min(existing.time_ms + elapsed_ms, max_item_ms())
            existing.save(update_fields=["time_ms", "updated_at"])
        hit.touch()
        return existing
    item_tiers = slot.to_item_tiers(tiers)
    if existing is None:
        existing = Judgment.objects.create(
            item=slot.item,
            annotator=hit.annotator,
            hit=hit,
            ranking=item_tiers,
            display_order=slot.display_order,
            time_ms=elapsed_ms,
        )
    else:
        existing.ranking = item_tiers
        existing.display_order = slot.display_order
        existing.time_ms = min(existing.time_ms + elapsed_ms, max_item_ms())
        existing.save(update_fields=["ranking", "display_order", "time_ms", "updated_at"])
    HitSlot.objects.filter(pk=slot.pk).update(draft_ranking=None)
    hit.touch()
    return existing


def add_time(hit: Hit, position: int, elapsed_ms: int) -> None:
    """Record time spent on a sample that was left without a new click (up to MAX_ITEM_SECONDS in all)."""
    elapsed_ms = _countable_ms(elapsed_ms)
    slot = hit.slots.filter(position=position).first()
    if slot is None or hit.is_submitted or elapsed_ms == 0:
        return
    with transaction.atomic():
        try:
            _check_revival_if_idle(hit)
        except OtherHitLive:
            return  # bookkeeping: time on an idle HIT next to a live one is not worth an error
        Judgment.objects.filter(item_id=slot.item_id, annotator_id=hit.annotator_id).update(
            time_ms=Least(F("time_ms") + elapsed_ms, Value(max_item_ms()), output_field=BigIntegerField())
        )
        hit.touch()


def add_times(hit: Hit, elapsed_ms_by_position: dict[int, int]) -> None:
    """add_time for several samples at once (the page sends them with the submit): two statements in all."""
    if hit.is_submitted or not elapsed_ms_by_position:
        return
    items = dict(hit.slots.filter(position__in=elapsed_ms_by_position).values_list("position", "item_id"))
    added = [
        When(item_id=item_id, then=Value(_countable_ms(elapsed_ms_by_position[position])))
        for position, item_id in items.items()
    ]
    if not added:
        return
    Judgment.objects.filter(annotator_id=hit.annotator_id, item_id__in=items.values()).update(
        time_ms=Least(
            F("time_ms") + Case(*added, default=Value(0), output_field=BigIntegerField()),
            Value(max_item_ms()),
            output_field=BigIntegerField(),
        )
    )


@transaction.atomic
def submit_hit(hit: Hit) -> Hit:
    hit = Hit.objects.select_for_update(of=("self",)).select_related("batch").get(pk=hit.pk)
    if hit.is_submitted:
        return hit
    missing = samples_missing(hit_progress(hit), given_back_positions(hit))
    if missing and hit.batch.is_ranking:
        raise AnnotationError(
            ngettext(
                "%(n)d sample still needs a complete order before this HIT can be submitted.",
                "%(n)d samples still need a complete order before this HIT can be submitted.",
                missing,
            )
            % {"n": missing}
        )
    if missing:
        raise AnnotationError(
            ngettext(
                "%(n)d sample still needs a rating before this HIT can be submitted.",
                "%(n)d samples still need a rating before this HIT can be submitted.",
                missing,
            )
            % {"n": missing}
        )
    hit.submitted_at = timezone.now()
    hit.save(update_fields=["submitted_at"])
    return hit
