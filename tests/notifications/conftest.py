"""Fixtures of the notification tests; the fake Slack server and moto SNS live in notify_fakes.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notify_fakes import moto_server, moto_sns, slack_server  # noqa: F401  (pytest fixtures)
