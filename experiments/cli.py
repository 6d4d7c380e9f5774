"""``nba experiment ...``: data-scientist experiments."""

from __future__ import annotations

import click

from experiments.push_vs_pull.cli import push_vs_pull


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def experiment() -> None:
    """Experiments on the simulated world (push vs pull, ...)."""


experiment.add_command(push_vs_pull)
