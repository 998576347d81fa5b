"""What the trainers share: the config check, the stop signal, the device and bf16 choice."""

from dataclasses import dataclass

import pytest
import torch

from policy import reinforce
from rewardmodel import train
from rlhf.devices import autocast_for, pick_device
from rlhf.training import TrainingStopped, require_positive_ints


@dataclass
class Options:
    steps: int = 1
    batch_size: int = 0


def test_require_positive_ints_names_the_bad_option():
    require_positive_ints(Options(batch_size=2), ("steps", "batch_size"))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        require_positive_ints(Options(), ("steps", "batch_size"))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 1.5"):
        require_positive_ints(Options(steps=1.5), ("steps",))


def test_both_trainers_raise_the_one_stop_signal():
    assert train.TrainingStopped is reinforce.TrainingStopped is TrainingStopped


def test_pick_device_honours_a_request_else_cuda_when_available():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_autocast_is_bf16_when_asked_and_off_on_the_cpu_by_default():
    cpu = torch.device("cpu")
    with autocast_for(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with autocast_for(cpu, bf16=True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
