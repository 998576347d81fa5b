"""The same data through every path gives the same answer: export vs reward-model pairs, the prompt group on both
sides, and "Send to annotators" checked as an import."""

from __future__ import annotations

import json

import pytest

from annotate.export import ExportFilters, trl_rows
from annotate.importers import ImportFileError, import_comparisons
from annotate.models import Batch, Item, Judgment, Rating
from policy.errors import PolicyRunError
from policy.evaluation import send_to_annotators
from policy.models import PolicyRun
from rewardmodel.services import pairs_from_judgments, preference_pairs
from rewardmodel.train import PreferencePair
from rewardmodel.train.data import split_by_group
from runs.models import RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(alice, bob, charlie) -> Batch:
    """Items judged by up to three people, the (+2, +2, -1) case among them; one with an input, one a dialogue."""
    batch = Batch.objects.create(name="judged")
    dialogue = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Pick one"},
    ]
    cases = {
        "dissent": ([{"role": "user", "content": "Pick one"}], "", (2, 2, -1)),
        "unanimous": ([{"role": "user", "content": "Pick one"}], "extra", (-2, -2, -1)),
        "tie": (dialogue, "", (1, -1, None)),
        "lone": (dialogue, "", (1, None, None)),
        "split": ([{"role": "user", "content": "Other"}], "", (-1, 2, 2)),
    }
    for name, (prompt, prompt_input, ratings) in cases.items():
        item = Item.objects.create(
            batch=batch,
            external_id=name,
            prompt=prompt,
            prompt_input=prompt_input,
            response_1=f"{name}-1",
            response_2=f"{name}-2",
        )
        for annotator, rating in zip((alice, bob, charlie), ratings, strict=True):
            if rating is not None:
                Judgment.objects.create(item=item, annotator=annotator, rating=Rating(rating))
    return batch


def _exported(aggregate: str) -> list[tuple[str, str, str, float]]:
    rows = trl_rows(ExportFilters(batches=["judged"], aggregate=aggregate))
    return sorted((r["chosen"], r["rejected"], r["strength"], r["margin"]) for r in rows)


def _trained(batch: Batch, aggregate: str) -> list[tuple[str, str, str, float]]:
    return sorted((p.chosen, p.rejected, p.level, p.margin) for p in preference_pairs([batch], aggregate))


@pytest.mark.parametrize("aggregate", ["each", "majority", "agreed"])
def test_export_and_reward_training_build_the_same_pairs(judged, aggregate):
    assert _exported(aggregate) == _trained(judged, aggregate)


def test_two_clear_votes_against_one_slight_dissent_are_slight_on_both_paths(judged):
    expected = [("dissent-2", "dissent-1", "slight", 0.0)]
    assert [row for row in _exported("majority") if row[0] == "dissent-2"] == expected
    assert [row for row in _trained(judged, "majority") if row[0] == "dissent-2"] == expected
    assert "dissent-2" not in {row[0] for row in _trained(judged, "agreed")}


def test_aggregated_pairs_hold_the_expected_items(judged):
    assert _trained(judged, "agreed") == [
        ("lone-2", "lone-1", "slight", 0.0),
        ("unanimous-1", "unanimous-2", "clear", 1.0),
    ]
    assert len(_trained(judged, "each")) == Judgment.objects.count()


def test_the_exported_prompt_is_the_one_the_reward_model_reads(judged):
    exported = {r["item_id"]: r["prompt"] for r in trl_rows(ExportFilters(batches=["judged"]), conversational=True)}
    trained = {p.chosen.split("-")[0]: p.prompt for p in pairs_from_judgments(Judgment.objects.order_by("pk"))}
    assert exported == trained
    assert trained["unanimous"] == [{"role": "user", "content": "Pick one\n\nextra"}]


def test_a_pair_without_a_group_falls_into_the_group_the_pair_builder_gives(judged):
    for pair in preference_pairs([judged], "each"):
        bare = PreferencePair(prompt=pair.prompt, chosen=pair.chosen, rejected=pair.rejected)
        assert bare.group_id() == pair.group_id() == pair.group


def test_same_prompt_from_a_file_and_from_judgments_lands_on_one_side_of_the_split(judged):
    built = preference_pairs([judged], "each")
    bare = [PreferencePair(prompt=p.prompt, chosen=p.chosen, rejected=p.rejected) for p in built]
    train, evaluation = split_by_group(built + bare, eval_fraction=0.5, seed=3)
    assert evaluation
    assert not {p.group_id() for p in train} & {p.group_id() for p in evaluation}


# Send to annotators ------------------------------------------------------------------------------


def _run_with(samples: list[dict]) -> PolicyRun:
    return PolicyRun.objects.create(kind=PolicyRun.Kind.REINFORCE, status=RunStatus.SUCCEEDED, eval_samples=samples)


def _sample(prompt, policy: str = "policy answer", reference: str = "reference answer") -> dict:
    return {"prompt": prompt, "policy_response": policy, "reference_response": reference}


def _import_error(tmp_path, record: dict) -> str:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ImportFileError) as error:
        import_comparisons(path, "imported", fmt="plain")
    return str(error.value)


@pytest.mark.parametrize(
    "sample, record",
    [
        (
            _sample([{"role": "robot", "content": "Q"}]),
            {"prompt": [{"role": "robot", "content": "Q"}], "response_1": "a", "response_2": "b"},
        ),
        (
            _sample([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]),
            {
                "prompt": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                "response_1": "a",
                "response_2": "b",
            },
        ),
        (_sample("Q", policy="  ", reference="  "), {"prompt": "Q", "response_1": " ", "response_2": "b"}),
    ],
    ids=["bad role", "last turn not the user's", "empty answer"],
)
def test_send_to_annotators_refuses_what_the_importer_refuses(charlie, tmp_path, sample, record):
    run = _run_with([_sample("Fine question"), sample])

    with pytest.raises(PolicyRunError) as sent:
        send_to_annotators(run, charlie)

    imported = _import_error(tmp_path, record)
    reason = imported.split(": ", 1)[1]  # the importer's text after "line 1, field 'x'"
    assert reason in str(sent.value) and "held-out answer 2" in str(sent.value)
    assert not Batch.objects.filter(name__startswith=f"policy-{run.pk}").exists()
    run.refresh_from_db()
    assert run.annotation_batch is None


def test_send_to_annotators_normalises_like_the_importer(charlie, tmp_path):
    run = _run_with([_sample("  Padded question ", policy=" policy ", reference="reference\n")])

    item = send_to_annotators(run, charlie).items.get()

    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"prompt": "  Padded question ", "response_1": " policy ", "response_2": "r"}) + "\n")
    imported = import_comparisons(path, "imported", fmt="plain").batch.items.get()
    assert item.prompt == imported.prompt == [{"role": "user", "content": "Padded question"}]
    assert {item.response_1, item.response_2} == {"policy", "reference"}
    assert item.response(item.source["policy_response"]) == "policy"
