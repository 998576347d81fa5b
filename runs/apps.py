from django.apps import AppConfig


class RunsConfig(AppConfig):
    """The run kernel: what every training run shares (claim, heartbeat, cancel, polled pages, run API)."""

    name = "runs"
    verbose_name = "Training runs"
