"""``nba experiment ...``: data-scientist experiments.

The experiments' modules (pandas, VW, DuckDB, the simulator) are imported only
when one of them runs, so ``nba experiment --help`` stays fast."""

from __future__ import annotations

import click

from nba_cli.main import LazyGroup

#: subcommand -> "module:attribute"
SUBCOMMANDS: dict[str, str] = {
    "ope-accuracy": "experiments.ope_accuracy.__main__:main",
    "push-vs-pull": "experiments.push_vs_pull.cli:push_vs_pull",
}

#: one line per subcommand for ``nba experiment --help`` (a test checks each
#: equals the start of the command's own help)
SHORT_HELP: dict[str, str] = {
    "ope-accuracy": "Bias, RMSE, median relative error and interval coverage...",
    "push-vs-pull": "Campaign, segment rules, uniform, VW configurations and...",
}


@click.group(
    cls=LazyGroup,
    lazy=SUBCOMMANDS,
    lazy_help=SHORT_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
def experiment() -> None:
    """Experiments on the simulated world (push vs pull, OPE accuracy)."""
