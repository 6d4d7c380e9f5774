"""OPE accuracy study: every estimator and interval against the simulator's truth.

``python -m experiments.ope_accuracy --seeds 20 --reps 200 --sizes 10000,100000``
(or the MLproject entry point ``ope_accuracy``). See :mod:`experiments.ope_accuracy.study`
for the design and :func:`run` for the outputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from experiments.ope_accuracy.gate import gate_findings, gate_headline, summarize_gate
from experiments.ope_accuracy.report import (
    log_to_mlflow,
    markdown_report,
    plot_coverage,
    plot_error,
)
from experiments.ope_accuracy.study import (
    StudyConfig,
    TargetCheck,
    check_targets,
    run_study_and_gate,
    summarize,
)

__all__ = ["StudyConfig", "StudyResult", "run"]


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run` wrote and found."""

    raw: pd.DataFrame
    summary: pd.DataFrame
    checks: list[TargetCheck]
    files: dict[str, Path]
    seconds: float
    run_id: str | None
    gate: pd.DataFrame
    gate_summary: pd.DataFrame
    gate_lines: list[str]


def run(
    config: StudyConfig,
    out_dir: str | Path,
    mlflow: bool = True,
    tracking_uri: str | None = None,
    progress: bool = False,
) -> StudyResult:
    """Run the study; write ``raw.csv``, ``summary.csv``, ``report.md``,
    ``error.png`` and ``coverage.png`` (and, with ``config.gate_reps``,
    ``gate.csv`` and ``gate_summary.csv``) to ``out_dir``; log them to MLflow."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    raw, gate = run_study_and_gate(config, progress=progress)
    seconds = time.perf_counter() - t0
    summary = summarize(raw, config.alpha)
    checks = check_targets(summary, raw, config.sizes)
    gate_summary = pd.DataFrame()
    gate_lines: list[str] = []
    if not gate.empty:
        gate_summary = summarize_gate(gate)
        ok, gate_lines = gate_findings(gate_summary, config.alpha, config.gate_lift)
        checks.append(
            TargetCheck(
                f"promotion gate: false-promotion rate <= alpha ({config.alpha}) for a "
                "challenger equal to the champion (identical, and different with equal value), "
                "every estimator, interval, overlap and size",
                ok,
                gate_headline(gate_summary),
            )
        )
    truths = (
        raw.groupby(["overlap", "target"], sort=False)["truth"]
        .agg(["mean", "min", "max"])
        .reset_index()
    )
    files = {
        "raw": out / "raw.csv",
        "summary": out / "summary.csv",
        "report": out / "report.md",
        "error_plot": out / "error.png",
        "coverage_plot": out / "coverage.png",
    }
    if not gate.empty:
        files["gate"] = out / "gate.csv"
        files["gate_summary"] = out / "gate_summary.csv"
        gate.to_csv(files["gate"], index=False)
        gate_summary.to_csv(files["gate_summary"], index=False)
    raw.to_csv(files["raw"], index=False)
    summary.to_csv(files["summary"], index=False)
    files["report"].write_text(
        markdown_report(config, summary, raw, checks, seconds, truths, gate_summary),
        encoding="utf-8",
    )
    plot_error(summary, files["error_plot"])
    plot_coverage(raw, files["coverage_plot"], config.alpha)
    run_id = log_to_mlflow(config, checks, files, seconds, tracking_uri) if mlflow else None
    return StudyResult(raw, summary, checks, files, seconds, run_id, gate, gate_summary, gate_lines)
