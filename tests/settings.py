"""The test suite's settings: the app's own, with DEBUG on as on a developer's machine.

DEBUG on allows the development SECRET_KEY when none is set (pytest-django still runs each test with
DEBUG off). Set here, in the environment, so a Celery worker started by a test inherits it.
"""

import os

os.environ.setdefault("DEBUG", "true")

from arbiter.settings import *  # noqa: E402, F403
