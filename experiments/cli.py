"""``nba experiment ...``: data-scientist experiments."""

from __future__ import annotations

import click

from experiments.ope_accuracy.__main__ import main as ope_accuracy
from experiments.push_vs_pull.cli import push_vs_pull


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def experiment() -> None:
    """Experiments on the simulated world (push vs pull, OPE accuracy)."""


experiment.add_command(push_vs_pull)
experiment.add_command(ope_accuracy, name="ope-accuracy")
