"""Offline training: replay logs -> VW examples -> model; MLflow tracking and registry.

Importing this package switches MLflow's telemetry off (``MLFLOW_DISABLE_TELEMETRY``,
``DO_NOT_TRACK``) unless the environment already set those variables, so that
nothing is sent anywhere by default.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
