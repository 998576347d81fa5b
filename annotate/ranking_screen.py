"""What the HIT page shows for a ranking sample: the K responses as A, B, C, ... and the order typed so far.

The order on screen is the draft when one is being typed (HitSlot.draft_ranking), else the saved judgment's order;
both come from annotate.selectors in screen tiers (1 = "A"), so the page never sees the item's own numbering.
"""

from __future__ import annotations

import json

from django.utils.safestring import SafeString

from annotate.rendering import render_markdown_cached
from annotate.selectors import ScreenSample
from rlhf.rankings import LETTERS, Tiers, letters_of


def ordinal(place: int) -> str:
    """1 -> '1st', 2 -> '2nd', 3 -> '3rd', 4 -> '4th' (places go up to 9)."""
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(place, "th")
    return f"{place}{suffix}"


def places_of(tiers: Tiers) -> dict[int, tuple[int, bool]]:
    """Each listed position's place (1 = best) and whether it shares it: tied responses share the first place they
    span, as in a race ("2nd, 2nd, 4th")."""
    places: dict[int, tuple[int, bool]] = {}
    place = 1
    for tier in tiers:
        for position in tier:
            places[position] = (place, len(tier) > 1)
        place += len(tier)
    return places


def place_label(place: int, tied: bool) -> str:
    return f"{ordinal(place)} (tie)" if tied else ordinal(place)


def ranking_context(sample: ScreenSample, allow_ties: bool) -> dict:
    """The template context of a ranking sample (annotate/_ranking.html)."""
    shown: Tiers = sample.draft_ranking if sample.draft_ranking is not None else (sample.ranking or [])
    places = places_of(shown)
    htmls: list[SafeString] = render_markdown_cached([response.text for response in sample.responses])
    responses = []
    for position, html in enumerate(htmls, start=1):
        place, tied = places.get(position, (0, False))
        responses.append(
            {
                "letter": LETTERS[position - 1],
                "position": position,
                "html": html,
                "place": place,
                "place_label": place_label(place, tied) if place else "",
            }
        )
    order = [
        {
            "json": json.dumps(tier),
            "letters": " = ".join(LETTERS[position - 1] for position in tier),
            "place_label": ordinal(places[tier[0]][0]),
        }
        for tier in shown
    ]
    has_draft = sample.draft_ranking is not None
    return {
        "is_ranking": True,
        "ranking_size": len(sample.responses),
        "last_letter": LETTERS[len(sample.responses) - 1],
        "allow_ties": allow_ties,
        "ranking_responses": responses,
        "ranking_order": order,
        "ranking_pool": [r for r in responses if not r["place"]],
        "ranking_tiers_json": json.dumps(shown),
        # Complete: the saved judgment is what is on screen (no newer draft over it).
        "ranking_complete": not has_draft and sample.ranking is not None,
        "order_text": letters_of(shown),
        "saved_text": letters_of(sample.ranking) if sample.ranking is not None else "",
        "draft_over_saved": has_draft and sample.ranking is not None,
    }
