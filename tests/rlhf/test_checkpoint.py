"""A resumable checkpoint and its sidecar never disagree, wherever the saving process dies.

The web app forgets what a run logged after the sidecar's step; the trainer resumes from the file the sidecar
commits. A disagreement lost logged steps (a CI run once resumed at step 21 after the web app kept steps 1-15).
"""

import json
import os

import pytest

from rlhf.checkpoint import _write_sidecar, committed_checkpoint, load_resume_checkpoint, save_resume_checkpoint


@pytest.fixture
def saved_at_5(tmp_path):
    path = tmp_path / "resume.pt"
    save_resume_checkpoint({"step": 5}, path)
    return path


def test_a_saved_checkpoint_is_committed_with_its_step(saved_at_5):
    assert committed_checkpoint(saved_at_5) == (5, saved_at_5)
    assert load_resume_checkpoint(saved_at_5)["step"] == 5
    assert sorted(p.name for p in saved_at_5.parent.iterdir()) == ["resume.json", "resume.pt"]


def _write_pending(path, step):
    import torch

    torch.save({"step": step}, path.with_name(path.name + ".next"))


def test_killed_before_the_commit_the_previous_checkpoint_stands(saved_at_5):
    _write_pending(saved_at_5, 10)
    assert committed_checkpoint(saved_at_5)[0] == 5
    assert load_resume_checkpoint(saved_at_5)["step"] == 5


def test_killed_after_the_commit_both_sides_take_the_new_step(saved_at_5):
    _write_pending(saved_at_5, 10)
    _write_sidecar(saved_at_5, 10, saved_at_5.name + ".next")
    assert committed_checkpoint(saved_at_5)[0] == 10
    assert load_resume_checkpoint(saved_at_5)["step"] == 10
    # ... and after the rename, before the sidecar says so.
    os.replace(saved_at_5.with_name("resume.pt.next"), saved_at_5)
    assert json.loads(saved_at_5.with_suffix(".json").read_text())["file"] == "resume.pt.next"
    assert committed_checkpoint(saved_at_5) == (10, saved_at_5)
    assert load_resume_checkpoint(saved_at_5)["step"] == 10


def test_no_sidecar_no_checkpoint(tmp_path):
    assert committed_checkpoint(tmp_path / "resume.pt") is None
    assert load_resume_checkpoint(tmp_path / "resume.pt") is None
    assert load_resume_checkpoint(None) is None
