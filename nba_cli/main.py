"""The ``nba`` command. Subcommands live with the layer that implements them and
are imported only when used, so ``nba --help`` stays fast and ``nba`` (the
library) never imports the layers above it."""

from __future__ import annotations

import importlib
import importlib.util

import click

#: subcommand -> "module:attribute"; each layer registers its own commands here.
SUBCOMMANDS: dict[str, str] = {
    "simulate": "simulators.cli:simulate",
    "logs": "nba_cli.logs:logs",
    "serve": "serving.cli:serve",
    "touches": "serving.cli_touches:touches",
    "train": "training.cli_train:train",
    "experiment": "experiments.cli:experiment",
    "evaluate": "training.cli_evaluate:evaluate",
    "promote": "training.cli_evaluate:promote",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(
            name
            for name, target in SUBCOMMANDS.items()
            if importlib.util.find_spec(target.split(":")[0]) is not None
        )

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
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
