"""The ``nba`` command. Subcommands live with the layer that implements them and
are imported only when used, so ``nba --help`` stays fast and ``nba`` (the
library) never imports the layers above it."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

import nba_cli

#: subcommand -> "module:attribute"; each layer registers its own commands here.
SUBCOMMANDS: dict[str, str] = {
    "simulate": "simulators.cli:simulate",
    "logs": "nba_cli.logs:logs",
    "serve": "serving.cli:serve",
    "touches": "serving.cli_touches:touches",
    "reps": "serving.cli_reps:reps",
    "report": "serving.cli_report:report",
    "rules": "serving.cli_rules:rules",
    "journeys": "serving.cli_journeys:journeys",
    "train": "training.cli_train:train",
    "experiment": "experiments.cli:experiment",
    "evaluate": "training.cli_evaluate:evaluate",
    "promote": "training.cli_evaluate:promote",
    "loop": "training.cli_loop:loop",
}


#: one line per subcommand for ``nba --help``, so listing them imports nothing;
#: a test checks each equals the start of the command's own help.
SHORT_HELP: dict[str, str] = {
    "simulate": "Simulate HCPs responding to a logging policy; write decisions, outcomes,...",
    "logs": "Event-log tools: reward join, Parquet and DSJSON export, DSJSON import.",
    "serve": "Run the decision service (FastAPI + uvicorn).",
    "touches": "Touches and interest signals in the service's event store.",
    "reps": "Reps, their capacity and territories in the service's event store.",
    "report": "Weekly KPI and lift report (markdown + PNG) from the service's event store.",
    "rules": "Contact rules: validate, diff, dry-run, apply, history, rollback.",
    "journeys": "Journeys: JSON schema, validate, show, apply, history, rollback.",
    "train": "Train a contextual-bandit policy from logged decisions with VW's native parser.",
    "experiment": "Experiments on the simulated world (push vs pull, OPE accuracy).",
    "evaluate": "Off-policy estimates of target policies on logged decisions, with intervals.",
    "promote": "Move the champion alias to the challenger only if the paired difference's...",
    "loop": "Retraining loop: export new events, train, gate, move the champion alias.",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is invoked
    (listing the subcommands in ``--help`` uses their one-line help).

    Parameters
    ----------
    *args, **kwargs
        As :class:`click.Group`.
    lazy : dict of str to str, optional
        Subcommand name -> ``"module:attribute"``; default :data:`SUBCOMMANDS`.
    lazy_help : dict of str to str, optional
        Subcommand name -> its line in ``--help``; default :data:`SHORT_HELP`.
    """

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, str] | None = None,
        lazy_help: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = SUBCOMMANDS if lazy is None else lazy
        self.lazy_help = SHORT_HELP if lazy_help is None else lazy_help

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """As :meth:`click.Group.main` (same arguments); sets
        :data:`nba_cli.PROCESS_ENDS_WITH_COMMAND` when the arguments are the
        program's (``args`` not given) and the process exits afterwards
        (``standalone_mode``)."""
        given = args[0] if args else kwargs.get("args")
        standalone = args[3] if len(args) > 3 else kwargs.get("standalone_mode", True)
        if given is None and standalone:
            # (in the package, not here: ``python -m nba_cli.main`` runs this
            # module as ``__main__``, a second copy the commands do not import)
            nba_cli.PROCESS_ENDS_WITH_COMMAND = True
        return super().main(*args, **kwargs)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy_help.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(
            name
            for name, target in self.lazy.items()
            if importlib.util.find_spec(target.split(":")[0].split(".")[0]) is not None
        )

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        cmd = getattr(module, attr)
        if not isinstance(cmd, click.Command):
            raise click.ClickException(f"{target} is not a click command")
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nba")
def main() -> None:
    """nba: next-best-action for HCP engagement, learned with contextual bandits."""


if __name__ == "__main__":
    main()
