"""Plots, markdown report and MLflow run of the OPE accuracy study."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.ope_accuracy.study import StudyConfig, TargetCheck, coverage_by_kind, fmt_pct

EXPERIMENT = "experiments/ope_accuracy"


def _panels(summary: pd.DataFrame) -> list[tuple[str, int]]:
    return [
        (o, int(s))
        for o in ("good", "poor")
        for s in sorted(summary["size"].unique())
        if not summary[(summary["overlap"] == o) & (summary["size"] == s)].empty
    ]


def plot_error(summary: pd.DataFrame, path: Path) -> Path:
    """Median relative error per estimator and target, one panel per overlap x size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(summary)
    sub = summary[summary["interval"] == "gaussian"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    ests = list(dict.fromkeys(sub["estimator"]))
    targets = list(dict.fromkeys(sub["target"]))
    width = 0.8 / max(len(targets), 1)
    for ax, (ov, size) in zip(axes[0], panels, strict=True):
        part = sub[(sub["overlap"] == ov) & (sub["size"] == size)]
        for k, t in enumerate(targets):
            vals = [
                float(
                    part[(part["estimator"] == e) & (part["target"] == t)][
                        "median_rel_error"
                    ].mean()
                )
                for e in ests
            ]
            ax.bar(np.arange(len(ests)) + k * width, vals, width, label=t)
        ax.axhline(0.05, color="black", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(ests)) + 0.4 - width / 2)
        ax.set_xticklabels(ests, rotation=30, fontsize=7)
        ax.set_title(f"{ov} overlap, n={size:,}", fontsize=9)
        ax.set_ylabel("median |error| / truth", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_coverage(raw: pd.DataFrame, path: Path, alpha: float) -> Path:
    """Coverage (pooled over targets and overlaps) with +-1 binomial SE, per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cov = coverage_by_kind(raw)
    sizes = sorted(cov["size"].unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 3.6), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        part = cov[cov["size"] == size]
        labels = [f"{r.interval}\n{r.estimator}" for r in part.itertuples()]
        x = np.arange(len(part))
        ax.errorbar(x, part["coverage"], yerr=part["coverage_se"], fmt="o", capsize=3)
        ax.axhline(1 - alpha, color="black", lw=0.8)
        ax.axhspan(0.93, 0.97, color="green", alpha=0.1)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=90, fontsize=6)
        ax.set_ylim(max(0.0, float(part["coverage"].min()) - 0.1), 1.01)
        ax.set_title(f"coverage, n={int(size):,}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(df: pd.DataFrame, cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c in ("coverage", "median_rel_error", "promotion_rate", "promotion_se"):
                cells.append(fmt_pct(float(v)))
            elif isinstance(v, float | np.floating):
                cells.append(f"{float(v):.5f}")
            else:
                cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def markdown_report(
    config: StudyConfig,
    summary: pd.DataFrame,
    raw: pd.DataFrame,
    checks: list[TargetCheck],
    seconds: float,
    truths: pd.DataFrame,
    gate_summary: pd.DataFrame | None = None,
) -> str:
    from experiments.ope_accuracy import gate, study

    lines = [
        "# OPE accuracy study",
        "",
        f"Run: {config.seeds} seeds, {config.reps} repetitions per (overlap, size), sizes "
        f"{', '.join(f'{s:,}' for s in config.sizes)}; pools of {config.hcps} HCPs x "
        f"{config.days} days; bootstrap B={config.n_bootstrap} (Poisson resampling) on "
        f"{', '.join(str(config.bootstrap_reps_for(i)) for i in range(len(config.sizes)))} "
        f"repetitions per configuration for {', '.join(config.bootstrap_estimators)}; "
        f"alpha {config.alpha}; {seconds:.0f} s.",
        "",
        "## Targets",
        "",
    ]
    for c in checks:
        status = "not measured" if c.met is None else ("MET" if c.met else "NOT MET")
        lines.append(f"- **{status}**: {c.name}. {c.detail}")
    lines += [
        "",
        "## What was simulated and redrawn",
        "",
        (study.__doc__ or "").split("Design")[1].split("\n", 2)[2].strip(),
        "",
    ]
    lines += ["## True values (mean over pools)", "", _table(truths, list(truths.columns)), ""]
    cov = coverage_by_kind(raw)
    lines += [
        "## Coverage pooled over targets and overlaps",
        "",
        _table(cov, ["size", "interval", "estimator", "coverage", "coverage_se", "n"]),
        "",
        "## Per configuration",
        "",
        _table(
            summary,
            [
                "overlap",
                "size",
                "target",
                "estimator",
                "interval",
                "reps",
                "truth",
                "bias",
                "rmse",
                "median_rel_error",
                "coverage",
                "coverage_se",
                "mean_width",
            ],
        ),
        "",
    ]
    if gate_summary is not None and not gate_summary.empty:
        lines += [
            "## Promotion gate",
            "",
            f"{config.gate_reps} repetitions per (overlap, size), sizes "
            f"{', '.join(f'{s:,}' for s in config.gate_sizes)}; minimum lift "
            f"{config.gate_min_lift}; true relative lift {config.gate_lift:.0%}.",
            "",
            (gate.__doc__ or "").split("\n\n", 1)[1].strip(),
            "",
            _table(
                gate_summary,
                [
                    "overlap",
                    "size",
                    "scenario",
                    "estimator",
                    "interval",
                    "reps",
                    "true_difference",
                    "promotion_rate",
                    "promotion_se",
                    "coverage",
                    "mean_width",
                ],
            ),
            "",
        ]
    return "\n".join(lines)


def log_to_mlflow(
    config: StudyConfig,
    checks: list[TargetCheck],
    files: dict[str, Path],
    seconds: float,
    tracking_uri: str | None = None,
) -> str:
    """Record the run in experiment ``experiments/ope_accuracy``; returns the run id."""
    import mlflow

    from training import mlflow_utils

    if os.environ.get("MLFLOW_RUN_ID"):
        mlflow_utils.configure(tracking_uri)
        ctx = mlflow.start_run()
    else:
        ctx = mlflow.start_run(experiment_id=mlflow_utils.experiment_id(EXPERIMENT, tracking_uri))
    with ctx as run:
        mlflow.log_params({k: str(v)[:500] for k, v in config.params.items()})
        metrics: dict[str, Any] = {"seconds": seconds}
        for i, c in enumerate(checks):
            if c.met is not None:
                metrics[f"target_{i + 1}_met"] = float(c.met)
        mlflow.log_metrics(metrics)
        for i, c in enumerate(checks):
            mlflow.set_tag(f"target_{i + 1}", f"{c.name}: {c.detail}"[:5000])
        for p in files.values():
            mlflow.log_artifact(str(p))
        return str(run.info.run_id)
