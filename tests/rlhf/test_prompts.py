"""Message rules, the input join, the prompt group and the transcript formats on hand-made prompts."""

import pytest

from rlhf.prompts import (
    MessageError,
    check_messages,
    hh_transcript,
    join_input,
    lecture_transcript,
    plain_dialogue,
    prompt_group_id,
)

DIALOGUE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Name a colour."},
]


def test_check_messages_returns_role_and_content_only():
    assert check_messages([{"role": "user", "content": "Hi", "name": "x"}]) == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    "value, message",
    [
        ([], "expected a non-empty list"),
        ("Hi", "expected a non-empty list"),
        ([{"role": "user", "content": "a"}, "b"], "message 2: expected an object"),
        ([{"role": "bot", "content": "a"}], "message 1: role must be one of system, user, assistant, got 'bot'"),
        ([{"role": "user", "content": 3}], "message 1: content must be a string"),
        ([{"role": "user", "content": "  "}], "message 1: empty content"),
    ],
)
def test_check_messages_names_the_first_broken_rule(value, message):
    with pytest.raises(MessageError, match=message):
        check_messages(value)


def test_check_messages_last_role_and_empty_content_on_request():
    with pytest.raises(MessageError, match="the last message must be the user's"):
        check_messages(DIALOGUE[:3], last_role="user")
    assert check_messages([{"role": "user", "content": ""}], allow_empty=True)[0]["content"] == ""


def test_join_input_appends_after_a_blank_line_without_touching_the_original():
    prompt = [{"role": "user", "content": "Summarise:"}]
    assert join_input(prompt, "The text.") == [{"role": "user", "content": "Summarise:\n\nThe text."}]
    assert join_input(prompt) == prompt and prompt == [{"role": "user", "content": "Summarise:"}]


def test_prompt_group_is_the_same_for_the_same_prompt_and_differs_otherwise():
    same = [{"content": "Hi", "role": "user"}]
    assert prompt_group_id([{"role": "user", "content": "Hi"}]) == prompt_group_id(same)
    assert prompt_group_id([{"role": "user", "content": "Hi"}]) != prompt_group_id([{"role": "user", "content": "Ho"}])
    assert prompt_group_id(same).startswith("prompt-")


def test_lecture_transcript():
    assert lecture_transcript([{"role": "user", "content": "Hi"}]) == "Hi"
    assert lecture_transcript(DIALOGUE[1:]) == "<User> Hi\n\n<Assistant> Hello.\n\n<User> Name a colour."


def test_hh_transcript_ends_where_the_response_starts():
    assert hh_transcript(DIALOGUE) == (
        "\n\nSystem: Be brief.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a colour.\n\nAssistant:"
    )


def test_plain_dialogue_marks_each_answer_with_its_end_token():
    text, spans = plain_dialogue([*DIALOGUE, {"role": "assistant", "content": "Red."}], eos="</s>")
    assert text == "Be brief.\n\nHuman: Hi\n\nAssistant: Hello.</s>\n\nHuman: Name a colour.\n\nAssistant: Red.</s>\n\n"
    assert [text[start:end] for start, end in spans] == [" Hello.</s>", " Red.</s>"]
