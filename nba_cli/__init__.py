"""nba_cli"""

#: True once :meth:`nba_cli.main.LazyGroup.main` runs as the program: the command
#: line read from ``sys.argv`` and the process ended after the command (click's
#: standalone mode). A command may then change state of the whole process that
#: later code would depend on (not under ``CliRunner``, which passes its arguments).
PROCESS_ENDS_WITH_COMMAND = False
