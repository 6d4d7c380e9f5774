"""The push-vs-pull outputs: markdown table, learning-curve PNG, weekly CSV, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from experiments.push_vs_pull.experiment import (
    PNG,
    REPORT,
    RESULTS_JSON,
    WEEKLY_CSV,
    ExperimentResult,
    write_weekly_csv,
)
from nba.reward import RewardDefinition
from simulators.hcp.learning import LEARNING_MODE


def _pm(m: float, s: float, digits: int = 4, pct: bool = False) -> str:
    if not math.isfinite(m):
        return "—"
    if pct:
        return f"{100 * m:.1f} ± {100 * s:.1f} %"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown(res: ExperimentResult) -> str:
    """The report: setup, the table per policy, the targets."""
    cfg = res.config
    lw = cfg.last_weeks
    lines = [
        "# Push vs pull",
        "",
        f"{cfg.hcps} simulated HCPs × {cfg.days} days, seeds {', '.join(map(str, cfg.seeds))} "
        f"(every policy runs in the same world of each seed); mean ± sd over "
        f"{len(cfg.seeds)} seeds. Reward: the world's reward definition (engagement). "
        f'"Last" = the last {lw} weeks (days {cfg.last_from_day + 1}–{cfg.days}).',
        "",
        f"VW learns {LEARNING_MODE}.",
        "",
        "Score = (V − V_uniform) / (V_oracle − V_uniform) with V the mean ground-truth "
        "expected reward of the chosen actions, per seed against that seed's uniform and "
        "oracle runs. × best non-learning = mean realized reward per decision / that of "
        "the best policy that does not learn (uniform, campaign or segment rules, the best "
        "per seed); × campaign likewise against the campaign alone, a weaker baseline.",
        "",
        f"| policy | × best non-learning, last {lw} wk | × best non-learning, whole run "
        f"| score, last {lw} wk | score, whole run | reward/decision | engagement rate "
        f"| reward/decision, last {lw} wk | engagement, last {lw} wk | total reward "
        f"| unsubscribes | × campaign, last {lw} wk | × campaign engagement, last {lw} wk |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in cfg.policies:
        s = res.summary[p]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{p}`",
                    _pm(*s["baseline_ratio_last"], digits=2),
                    _pm(*s["baseline_ratio_all"], digits=2),
                    _pm(*s["score_last"], pct=True),
                    _pm(*s["score_all"], pct=True),
                    _pm(*s["mean_reward"]),
                    _pm(*s["engagement_rate"], pct=True),
                    _pm(*s["last_reward"]),
                    _pm(*s["last_engagement"], pct=True),
                    _pm(*s["total_reward"], digits=0),
                    _pm(*s["unsubscribes"], digits=1),
                    _pm(*s["ratio_last"], digits=2),
                    _pm(*s["engagement_ratio_last"], digits=2),
                ]
            )
            + " |"
        )
    lines.append("")
    t = res.targets
    if t:

        def met(key: str) -> str:
            return "**met**" if t[key] else "**not met**"

        lines += [
            "## Targets, best VW configuration by score over the last weeks",
            "",
            f"- best VW configuration: `{t['policy']}`",
            f"- reward per decision vs the best non-learning policy (last {lw} weeks): "
            f"{t['baseline_ratio_last']:.3f} ± {t['baseline_ratio_last_sd']:.3f} × "
            f"(target ≥ {t['baseline_ratio_target']:.2f} ×): {met('baseline_ratio_met')}; "
            f"whole run {t['baseline_ratio_all']:.2f} ± {t['baseline_ratio_all_sd']:.2f} ×",
            f"- normalized score (last {lw} weeks): "
            f"{100 * t['score_last']:.1f} ± {100 * t['score_last_sd']:.1f} % "
            f"(target ≥ {100 * t['score_target']:.0f} %): {met('score_met')}",
            f"- normalized score (whole run): "
            f"{100 * t['score_all']:.1f} ± {100 * t['score_all_sd']:.1f} % "
            f"(target ≥ {100 * t['score_all_target']:.0f} %): {met('score_all_met')}",
            f"- engagement rate vs the campaign (last {lw} weeks): "
            f"{t['engagement_ratio_last']:.3f} ± {t['engagement_ratio_last_sd']:.3f} × "
            f"(target ≥ {t['engagement_ratio_target']:.2f} ×): {met('engagement_ratio_met')}",
            f"- for reference, reward per decision vs the campaign alone: "
            f"{t['ratio_last']:.2f} ± {t['ratio_last_sd']:.2f} × (last {lw} weeks), "
            f"{t['ratio_all']:.2f} ± {t['ratio_all_sd']:.2f} × (whole run)",
            "",
        ]
    vd = RewardDefinition.business_value()
    lines += [
        "## Business value per decision",
        "",
        f"Outcomes in the reward window valued and contacts costed by `{vd.id}` "
        "(nba/data/value.toml; planning assumptions in currency units). Value is "
        "before costs; net = value − cost. Mean ± sd over seeds, whole run.",
        "",
        "| policy | value/decision | cost/decision | net value/decision |",
        "|---|---|---|---|",
    ]
    for p in cfg.policies:
        s = res.summary[p]
        lines.append(
            f"| `{p}` | {_pm(*s['value_per_decision'], digits=2)} "
            f"| {_pm(*s['cost_per_decision'], digits=2)} "
            f"| {_pm(*s['net_value_per_decision'], digits=2)} |"
        )
    lines.append("")
    lines += ["## Weekly mean reward per decision (realized; mean over seeds)", ""]
    header = "| week | " + " | ".join(f"`{p}`" for p in cfg.policies) + " |"
    lines += [header, "|---" * (len(cfg.policies) + 1) + "|"]
    for w in range(cfg.weeks):
        row = [str(w + 1)]
        for p in cfg.policies:
            vals = [r.weekly_reward[w] for r in res.runs_of(p)]
            vals = [v for v in vals if math.isfinite(v)]
            row.append(f"{np.mean(vals):.4f}" if vals else "—")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Weekly engagement rate (mean over seeds)", "", header]
    lines.append("|---" * (len(cfg.policies) + 1) + "|")
    for w in range(cfg.weeks):
        row = [str(w + 1)]
        for p in cfg.policies:
            vals = [r.weekly_engagement[w] for r in res.runs_of(p)]
            vals = [v for v in vals if math.isfinite(v)]
            row.append(f"{100 * np.mean(vals):.1f} %" if vals else "—")
        lines.append("| " + " | ".join(row) + " |")
    secs = sum(r.seconds for r in res.runs)
    lines += ["", f"Simulation time summed over runs: {secs:.0f} s.", ""]
    return "\n".join(lines)


def plot(res: ExperimentResult, path: Path) -> None:
    """Learning curves: weekly ground-truth reward and engagement rate per policy
    (mean over seeds, band ± 1 sd)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cfg = res.config
    weeks = np.arange(1, cfg.weeks + 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, attr, title, scale in (
        (axes[0], "weekly_truth", "expected reward per decision (ground truth)", 1.0),
        (axes[1], "weekly_engagement", "engagement rate (%)", 100.0),
    ):
        for p in cfg.policies:
            arr = np.array([getattr(r, attr) for r in res.runs_of(p)], dtype=np.float64) * scale
            m = np.nanmean(arr, axis=0)
            s = np.nanstd(arr, axis=0, ddof=1) if arr.shape[0] > 1 else np.zeros_like(m)
            style = "--" if p in ("uniform", "oracle") else "-"
            (line,) = ax.plot(weeks, m, style, marker="o", ms=3, label=p)
            ax.fill_between(weeks, m - s, m + s, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("week")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"push vs pull: {cfg.hcps} HCPs, {cfg.days} days, {len(cfg.seeds)} seeds (mean ± sd)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(res: ExperimentResult, out: Path) -> dict[str, str]:
    """Write report.md, learning_curve.png, weekly.csv and results.json to ``out``."""
    files = {
        "report": out / REPORT,
        "plot": out / PNG,
        "weekly": out / WEEKLY_CSV,
        "results": out / RESULTS_JSON,
    }
    files["report"].write_text(markdown(res), encoding="utf-8")
    plot(res, files["plot"])
    write_weekly_csv(res, files["weekly"])
    files["results"].write_text(json.dumps(res.to_dict(), indent=1, default=str) + "\n")
    return {k: str(v) for k, v in files.items()}
