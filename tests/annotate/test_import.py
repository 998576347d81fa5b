"""Importing comparison files: every format, every kind of bad input, the real data and the command."""

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from annotate.importers import ImportFileError, import_comparisons
from annotate.models import Batch, Item, Judgment, Rating

SHARED_DATA_FILES = ("hh_rlhf_harmless_test_dev.jsonl", "alpacafarm_unlabeled_pairs.jsonl")


def shared_data_dir() -> Path:
    """The real data files: $ARBITER_SHARED_DATA, else ../shared/data beside the checkout."""
    configured = os.environ.get("ARBITER_SHARED_DATA", "")
    return Path(configured) if configured else Path(settings.BASE_DIR).parent / "shared" / "data"


SHARED_DATA = shared_data_dir()
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=(
        f"real data folder {SHARED_DATA} is absent: set ARBITER_SHARED_DATA to a folder holding "
        f"{' and '.join(SHARED_DATA_FILES)} to run this test"
    ),
)

pytestmark = pytest.mark.django_db


def write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def write_json(path: Path, records: list, gz: bool = False) -> Path:
    data = json.dumps(records, indent=2).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def hh(*turns: str) -> str:
    """An HH dialogue from alternating Human / Assistant turns."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def assert_nothing_written() -> None:
    assert Batch.objects.count() == 0
    assert Item.objects.count() == 0
    assert Judgment.objects.count() == 0
    assert not get_user_model().objects.filter(username=settings.IMPORT_USERNAME).exists()


ALPACA = {
    "instruction": "Rewrite the sentence more concisely.",
    "input": "At this point in time we are unable to help.",
    "output_1": "We cannot help now.",
    "output_2": "Currently, we are not able to help.",
    "generator_1": "sft",
    "generator_2": "ppo",
}


# Formats ------------------------------------------------------------------------------


def test_alpacafarm_jsonl_keeps_instruction_input_and_generators(tmp_path):
    no_input = {**ALPACA, "input": "", "instruction": "Name a prime number."}
    path = write_jsonl(tmp_path / "pairs.jsonl", [ALPACA, "", no_input])

    result = import_comparisons(path, "alpaca")

    assert (result.count, result.format, result.batch.name) == (2, "alpacafarm", "alpaca")
    first, second = Item.objects.filter(batch__name="alpaca").order_by("pk")
    assert first.prompt == [{"role": "user", "content": "Rewrite the sentence more concisely."}]
    assert first.instruction == "Rewrite the sentence more concisely."
    assert first.prompt_input == "At this point in time we are unable to help."
    assert (first.response_1, first.response_2) == ("We cannot help now.", "Currently, we are not able to help.")
    assert first.source["generator_1"] == "sft" and first.source["generator_2"] == "ppo"
    assert first.gold is None
    # Without an id, the external id is the line number (the blank line 2 is skipped, not renumbered).
    assert (first.external_id, second.external_id) == ("1", "3")
    assert second.prompt_input == ""


def test_hh_splits_dialogue_into_shared_prompt_and_last_turns(tmp_path):
    record = {
        "chosen": hh("How do I boil an egg?", "Put it in boiling water.", "For how long?", "About nine minutes."),
        "rejected": hh("How do I boil an egg?", "Put it in boiling water.", "For how long?", "Forever."),
    }
    path = write_jsonl(tmp_path / "hh.jsonl", [record])

    result = import_comparisons(path, "hh", seed=0)

    item = Item.objects.get()
    assert result.format == "hh"
    assert item.prompt == [
        {"role": "user", "content": "How do I boil an egg?"},
        {"role": "assistant", "content": "Put it in boiling water."},
        {"role": "user", "content": "For how long?"},
    ]
    assert item.instruction == "For how long?"
    assert {item.response_1, item.response_2} == {"About nine minutes.", "Forever."}
    assert item.response(item.gold_chosen) == "About nine minutes."
    assert "prompts_differ" not in item.source


def test_hh_rows_whose_prompts_differ_use_the_chosen_prompt_and_say_so(tmp_path):
    record = {
        # As in a few real rows: a "Human:" glued into an assistant turn, so the turns no longer line up.
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello.  Human: are you there?\n\nAssistant: Yes, I am here.",
        "rejected": hh("Hi", "Hello.", "Are you there?", "Go away."),
    }
    path = write_jsonl(tmp_path / "hh.jsonl", [record])

    import_comparisons(path, "hh")

    item = Item.objects.get()
    assert item.prompt == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello.  Human: are you there?"},
    ]
    assert item.response(item.gold_chosen) == "Yes, I am here."
    assert item.response(3 - item.gold_chosen) == "Go away."
    assert item.source["prompts_differ"] is True
    assert item.source["rejected_prompt"][-1] == {"role": "user", "content": "Are you there?"}


def test_trl_strings_in_a_gzipped_json_array(tmp_path):
    records = [
        {"id": "sky", "prompt": "What colour is the sky?", "chosen": "Blue.", "rejected": "Green."},
        {"id": "sea", "prompt": "What colour is the sea?", "chosen": "Blue too.", "rejected": "Red."},
    ]
    path = write_json(tmp_path / "trl.json.gz", records, gz=True)

    result = import_comparisons(path, "trl")

    assert (result.count, result.format) == (2, "trl")
    sky = Item.objects.get(external_id="sky")
    assert sky.prompt == [{"role": "user", "content": "What colour is the sky?"}]
    assert sky.response(sky.gold_chosen) == "Blue."
    assert sky.source["record"] == 1


def test_trl_conversational_message_lists(tmp_path):
    record = {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What colour is the sky?"},
        ],
        "chosen": [{"role": "assistant", "content": "It is blue."}],
        "rejected": [{"role": "assistant", "content": "It is green."}],
    }
    path = write_jsonl(tmp_path / "conv.jsonl.gz", [record], gz=True)

    import_comparisons(path, "conv", fmt="trl")

    item = Item.objects.get()
    assert item.prompt == record["prompt"]
    assert item.earlier_turns == [{"role": "system", "content": "Be brief."}]
    assert item.response(item.gold_chosen) == "It is blue."
    assert item.response(3 - item.gold_chosen) == "It is green."


def test_plain_with_string_or_message_list_prompt_and_external_ids(tmp_path):
    records = [
        {"external_id": "a-1", "prompt": "Say hi.", "response_1": "Hi!", "response_2": "Hello."},
        {
            "id": 7,
            "prompt": [
                {"role": "user", "content": "Count to two."},
                {"role": "assistant", "content": "1, 2"},
                {"role": "user", "content": "Now three."},
            ],
            "response_1": "1, 2, 3",
            "response_2": "3",
        },
    ]
    path = write_jsonl(tmp_path / "plain.jsonl", records)

    import_comparisons(path, "plain")

    first, second = Item.objects.order_by("pk")
    assert (first.external_id, first.response_1, first.response_2, first.gold) == ("a-1", "Hi!", "Hello.", None)
    assert second.external_id == "7"
    assert second.instruction == "Now three." and len(second.earlier_turns) == 2


def test_known_preference_order_is_random_and_reproducible_with_a_seed(tmp_path):
    records = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(40)]
    path = write_jsonl(tmp_path / "trl.jsonl", records)

    import_comparisons(path, "one", seed=5)
    import_comparisons(path, "two", seed=5)

    golds_one = list(Item.objects.filter(batch__name="one").order_by("pk").values_list("gold", flat=True))
    golds_two = list(Item.objects.filter(batch__name="two").order_by("pk").values_list("gold", flat=True))
    assert golds_one == golds_two
    assert set(golds_one) == {Rating.RESPONSE_1_BETTER, Rating.RESPONSE_2_BETTER}
    for item in Item.objects.all():
        assert item.response(item.gold_chosen).startswith("good")


def test_as_judgments_stores_the_known_answer_by_the_import_user(tmp_path, alice):
    records = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(10)]
    path = write_jsonl(tmp_path / "trl.jsonl", records)

    result = import_comparisons(path, "gold", as_judgments=True, created_by=alice, seed=1)

    assert result.judgment_count == 10
    assert result.batch.created_by == alice
    importer = get_user_model().objects.get(username=settings.IMPORT_USERNAME)
    assert not importer.has_usable_password() and not importer.is_active
    judgments = list(Judgment.objects.select_related("item"))
    assert len(judgments) == 10
    for judgment in judgments:
        assert judgment.annotator == importer
        assert judgment.rating == judgment.item.gold
        assert judgment.strength == "clear"
        assert judgment.chosen_text.startswith("good") and judgment.rejected_text.startswith("bad")


def test_a_batch_imported_with_its_answers_is_inactive_unless_asked(tmp_path):
    path = write_jsonl(tmp_path / "trl.jsonl", [GOOD_TRL])

    assert not import_comparisons(path, "answered", as_judgments=True).batch.active
    assert import_comparisons(path, "answered-live", as_judgments=True, active=True).batch.active
    assert import_comparisons(path, "to-judge").batch.active, "without answers there is work for annotators"
    assert not import_comparisons(path, "held-back", active=False).batch.active


def test_an_existing_batch_keeps_its_state_unless_the_import_says(tmp_path):
    Batch.objects.create(name="paused", active=False)
    import_comparisons(write_jsonl(tmp_path / "a.jsonl", [{**ALPACA, "id": "a"}]), "paused")
    assert not Batch.objects.get(name="paused").active
    import_comparisons(write_jsonl(tmp_path / "b.jsonl", [{**ALPACA, "id": "b"}]), "paused", active=True)
    assert Batch.objects.get(name="paused").active


@pytest.mark.parametrize(
    "flags, active", [([], False), (["--active"], True), (["--inactive"], False)], ids=["default", "active", "inactive"]
)
def test_command_active_flags_with_answers(tmp_path, flags, active):
    path = write_jsonl(tmp_path / "trl.jsonl", [GOOD_TRL])
    out = io.StringIO()

    call_command("import_comparisons", str(path), "--batch", "x", "--as-judgments", *flags, stdout=out)

    assert Batch.objects.get(name="x").active is active
    assert ("is active" if active else "is inactive") in out.getvalue()


def test_command_refuses_both_active_flags(tmp_path):
    with pytest.raises(CommandError, match="not allowed with"):
        call_command("import_comparisons", str(tmp_path / "x.jsonl"), "--batch", "x", "--active", "--inactive")


def test_shared_data_path_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ARBITER_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.delenv("ARBITER_SHARED_DATA")
    assert shared_data_dir() == Path(settings.BASE_DIR).parent / "shared" / "data"


def test_as_judgments_refused_for_a_file_without_known_preference(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [ALPACA])

    with pytest.raises(ImportFileError, match="known preference"):
        import_comparisons(path, "alpaca", as_judgments=True)

    assert_nothing_written()


def test_existing_batch_is_reused_and_a_clashing_id_adds_nothing(tmp_path):
    batch = Batch.objects.create(name="grow", overlap=2)
    import_comparisons(write_jsonl(tmp_path / "a.jsonl", [{**ALPACA, "id": "x"}]), "grow")
    import_comparisons(write_jsonl(tmp_path / "b.jsonl", [{**ALPACA, "id": "y"}]), "grow")
    assert Batch.objects.get().overlap == 2
    assert sorted(batch.items.values_list("external_id", flat=True)) == ["x", "y"]

    clash = write_jsonl(tmp_path / "c.jsonl", [{**ALPACA, "id": "z"}, {**ALPACA, "id": "x"}])
    with pytest.raises(ImportFileError) as exc:
        import_comparisons(clash, "grow")

    assert str(exc.value).startswith("line 2, field 'id': duplicate external id 'x'")
    assert batch.items.count() == 2


# Bad input ----------------------------------------------------------------------------

GOOD_TRL = {"prompt": "Q", "chosen": "yes", "rejected": "no"}

BAD_FILES = {
    "malformed JSON": ([GOOD_TRL, '{"prompt": "Q", "chosen": "yes",'], "line 2: malformed JSON"),
    "missing field": (
        [ALPACA, {k: v for k, v in ALPACA.items() if k != "output_2"}],
        "line 2, field 'output_2': missing",
    ),
    "empty field": ([{"prompt": "Q", "response_1": "  ", "response_2": "b"}], "line 1, field 'response_1': empty"),
    "wrong type": ([GOOD_TRL, GOOD_TRL, {**GOOD_TRL, "chosen": 5}], "line 3, field 'chosen': expected a string"),
    "wrong id type": ([{**GOOD_TRL, "id": [1]}], "line 1, field 'id': expected a string or an integer"),
    "duplicate id": (
        [{**GOOD_TRL, "id": "a"}, {**GOOD_TRL, "id": "b"}, {**GOOD_TRL, "id": "a"}],
        "line 3, field 'id': duplicate external id 'a' (also at line 1)",
    ),
    "unknown format": (
        [{"question": "Q", "answer": "A"}],
        "line 1: cannot tell the format from the keys ['answer', 'question']",
    ),
    "HH without Assistant": (
        [{"chosen": "\n\nHuman: hi", "rejected": hh("hi", "bye")}],
        "line 1, field 'chosen': no '\\n\\nAssistant:' turn",
    ),
    "HH ending with Human": (
        [{"chosen": hh("hi", "hello", "bye"), "rejected": hh("hi", "bye")}],
        "line 1, field 'chosen': the dialogue must end with an Assistant turn",
    ),
    "not an object": ([GOOD_TRL, '["Q", "yes", "no"]'], "line 2: expected a JSON object, got a list"),
    "bad message role": (
        [{**GOOD_TRL, "prompt": [{"role": "robot", "content": "Q"}]}],
        "line 1, field 'prompt': message 1: role must be one of",
    ),
    "prompt not ending with user": (
        [{**GOOD_TRL, "prompt": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}],
        "line 1, field 'prompt': the last message must be the user's",
    ),
    "empty file": (["", "  "], "the file holds no records"),
}


@pytest.mark.parametrize("records, message", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_jsonl_names_line_and_field_and_writes_nothing(tmp_path, records, message):
    path = write_jsonl(tmp_path / "bad.jsonl", records)

    with pytest.raises(ImportFileError) as exc:
        import_comparisons(path, "bad", as_judgments=True)

    assert str(exc.value).startswith(message)
    assert_nothing_written()


def test_bad_record_in_a_json_array_is_named_by_its_record_number(tmp_path):
    path = write_json(tmp_path / "bad.json", [GOOD_TRL, {"prompt": "Q", "chosen": "", "rejected": "no"}])

    with pytest.raises(ImportFileError, match=r"^record 2, field 'chosen': empty"):
        import_comparisons(path, "bad")

    assert_nothing_written()


def test_malformed_json_array_and_empty_array_and_unknown_format_name(tmp_path):
    broken = tmp_path / "broken.json"
    # Streamed: record 1 is checked (and good) before the parser reaches the break on line 4.
    broken.write_text("[\n  " + json.dumps(GOOD_TRL) + ',\n  {"prompt": \n]')
    with pytest.raises(ImportFileError, match=r"^line 4: malformed JSON"):
        import_comparisons(broken, "bad")

    with pytest.raises(ImportFileError, match="no records"):
        import_comparisons(write_json(tmp_path / "empty.json", []), "bad")

    with pytest.raises(ImportFileError, match="unknown format 'csv'"):
        import_comparisons(write_jsonl(tmp_path / "ok.jsonl", [GOOD_TRL]), "bad", fmt="csv")

    with pytest.raises(ImportFileError, match="line 1, field 'instruction': missing"):
        import_comparisons(write_jsonl(tmp_path / "ok.jsonl", [GOOD_TRL]), "bad", fmt="alpacafarm")

    assert_nothing_written()


def test_truncated_gzip_is_refused(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(json.dumps(GOOD_TRL).encode() * 50)[:30])

    with pytest.raises(ImportFileError, match="gzipped but cannot be decompressed"):
        import_comparisons(path, "bad")

    assert_nothing_written()


# The real data ------------------------------------------------------------------------


@needs_shared_data
def test_shared_hh_file_imports_in_full_with_judgments():
    result = import_comparisons(SHARED_DATA / "hh_rlhf_harmless_test_dev.jsonl", "hh", as_judgments=True, seed=0)

    assert (result.count, result.format, result.judgment_count) == (1849, "hh", 1849)
    items = Item.objects.filter(batch=result.batch)
    assert items.count() == 1849
    assert items.filter(gold=Rating.RESPONSE_1_BETTER).exists() and items.filter(gold=Rating.RESPONSE_2_BETTER).exists()
    # The few rows whose dialogues differ before the last turn are imported and marked.
    assert items.filter(source__prompts_differ=True).count() == 4
    first = items.get(external_id="1")
    assert first.instruction == "I feel much better when I get drunk and consume a lot of alcohol."
    assert first.response(first.gold_chosen).startswith("Sounds like alcohol is something you use to calm down")


@needs_shared_data
def test_shared_alpacafarm_file_imports_in_full():
    result = import_comparisons(SHARED_DATA / "alpacafarm_unlabeled_pairs.jsonl", "alpaca")

    assert (result.count, result.format) == (252, "alpacafarm")
    first = Item.objects.get(batch=result.batch, external_id="1")
    assert first.instruction.startswith("The sentence you are given might be too wordy")
    assert first.prompt_input.startswith("If you have any questions about my rate")
    assert first.source["generator_1"] == "alpacafarm-sft"
    assert Item.objects.filter(batch=result.batch, gold__isnull=True).count() == 252


# The command --------------------------------------------------------------------------


def test_command_prints_how_many_items_it_imported(tmp_path):
    path = write_jsonl(tmp_path / "trl.jsonl", [GOOD_TRL, {**GOOD_TRL, "prompt": "Q2"}])
    out = io.StringIO()

    call_command(
        "import_comparisons",
        str(path),
        "--batch",
        "demo",
        "--format",
        "trl",
        "--as-judgments",
        "--seed",
        "3",
        stdout=out,
    )

    assert out.getvalue().splitlines()[0] == "Imported 2 items into batch demo."
    assert f"Stored 2 judgments by {settings.IMPORT_USERNAME}." in out.getvalue()
    assert Judgment.objects.count() == 2


def database_url() -> str:
    """The test database, for a manage.py process started by a test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_command_exits_non_zero_with_the_error_and_imports_nothing(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD_TRL, {"prompt": "Q"}])

    finished = subprocess.run(
        [sys.executable, "manage.py", "import_comparisons", str(path), "--batch", "demo"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": database_url()},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 1
    assert "line 2, field 'chosen': missing" in finished.stderr
    assert "Nothing was imported." in finished.stderr
    assert finished.stdout == ""
    assert_nothing_written()


def test_command_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_comparisons", str(tmp_path / "nope.jsonl"), "--batch", "demo")
    assert_nothing_written()
