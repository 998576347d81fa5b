"""Train a policy with REINFORCE against a finished reward model, in the foreground (no worker needed)."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from policy.management.foreground import PolicyTrainingCommand
from policy.models import PolicyRun
from rewardmodel.models import RewardModelRun


class Command(PolicyTrainingCommand):
    help = (
        "REINFORCE a policy against a reward-model run, in this process. Prints the run id, progress lines, "
        "and ends with one JSON line: reward of policy and reference, reward-model win rate, KL."
    )
    kind = PolicyRun.Kind.REINFORCE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reward-run", type=int, required=True, metavar="ID", help="A succeeded reward-model run.")
        self.add_base_arguments(parser)
        prompts = parser.add_mutually_exclusive_group(required=True)
        prompts.add_argument("--prompts-batch", metavar="NAME", help="Use the distinct prompts of this batch.")
        prompts.add_argument("--prompts-file", metavar="FILE", help='JSONL, one {"prompt": ...} per line.')
        parser.add_argument("--steps", type=int)
        parser.add_argument("--prompts-per-step", type=int)
        parser.add_argument("--samples-per-prompt", type=int, help="n samples per prompt.")
        parser.add_argument("--baseline", choices=("none", "mean", "loo"))
        parser.add_argument("--kl-coef", type=float, help="β.")
        parser.add_argument("--kl-mode", choices=("reward", "loss"))
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--eval-every", type=int)
        parser.add_argument("--checkpoint-every", type=int)
        parser.add_argument("--seed", type=int)

    def handle(self, *args, **options) -> None:
        reward_run = RewardModelRun.objects.filter(pk=options["reward_run"]).first()
        if reward_run is None:
            raise CommandError(f"No reward-model run {options['reward_run']}.")
        training = self.given(
            options,
            (
                "steps",
                "prompts_per_step",
                "samples_per_prompt",
                "baseline",
                "kl_coef",
                "kl_mode",
                "learning_rate",
                "max_new_tokens",
                "temperature",
                "eval_every",
                "checkpoint_every",
                "seed",
            ),
        )
        self.start_and_train(
            options, options["prompts_batch"], options["prompts_file"], reward_run=reward_run, **training
        )
