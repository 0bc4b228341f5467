"""Local development and the demo (``make run``): embedded defaults, debug on unless set."""

from apps.config.env import env_bool
from apps.config.settings.base import *  # noqa: F403

DEBUG = env_bool("DEBUG", True)
