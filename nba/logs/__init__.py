"""The event log: schemas, Parquet I/O, the reward join and DSJSON interop.

- :mod:`nba.logs.schema`: Arrow schemas and the directory layout (the contract).
- :mod:`nba.logs.io`: atomic, date-partitioned append and date-filtered read.
- :mod:`nba.logs.join`: decisions joined to outcomes, one reward per decision
  (one SQL source): ``join_rewards``, ``load_joined``.
- :mod:`nba.logs.engine`: where that SQL runs, DuckDB (default) or Spark SQL.
- :mod:`nba.logs.dsjson`: DSJSON export for VW and import of VW/Personalizer logs.

Submodules are imported explicitly (``from nba.logs.join import load_joined``),
so importing :mod:`nba.logs` loads neither DuckDB nor the catalog.
"""
