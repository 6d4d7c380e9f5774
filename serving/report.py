"""The brand manager's weekly report: KPIs by channel, market and content, the
suppressions, and the holdout lift next to the off-policy estimate, as markdown
and one PNG, from the service's event store.

Everything comes from :func:`serving.store_kpis.kpis` and
:func:`serving.store_lift.lift`; this module only formats. Files written to
``out``: ``report.md``, ``kpis.png`` (engagement rate and net value per
channel, the lift with its interval) and ``kpis.json`` (the numbers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nba.ope.estimators import Interval
from nba.policies.base import Policy
from nba.reward import RewardDefinition
from serving.store import EventStore
from serving.store_kpis import KpiGroup, KpiReport, kpis
from serving.store_lift import MEASURES, LiftReport, lift

REPORT_MD = "report.md"
REPORT_PNG = "kpis.png"
REPORT_JSON = "kpis.json"
#: content items listed in the report, best net value first
TOP_CONTENT = 10

_MEASURE_LABEL = {
    "engagement": "engagement rate",
    "value": "value / decision",
    "net_value": "net value / decision",
}


@dataclass(frozen=True)
class WeeklyReport:
    """What :func:`build` computed; :func:`write` formats it."""

    by_channel: KpiReport
    by_market: KpiReport
    by_content: KpiReport
    lift: LiftReport
    store: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "by_channel": self.by_channel.as_dict(),
            "by_market": self.by_market.as_dict(),
            "by_content": self.by_content.as_dict(),
            "lift": self.lift.as_dict(),
        }


def build(
    store: EventStore,
    since: datetime,
    until: datetime,
    value_def: RewardDefinition,
    holdout_policy: Policy | str,
    alpha: float = 0.05,
) -> WeeklyReport:
    """KPIs by channel, market and content and the holdout lift of one period."""
    return WeeklyReport(
        by_channel=kpis(store, since, until, "channel", value_def),
        by_market=kpis(store, since, until, "market", value_def),
        by_content=kpis(store, since, until, "content", value_def),
        lift=lift(store, since, until, value_def, holdout_policy, alpha),
        store=str(store.path),
    )


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:,.{digits}f}"


def _kpi_table(groups: list[KpiGroup], label: str) -> list[str]:
    lines = [
        f"| {label} | decisions | executed | holdout | outcome rate | engagement rate "
        "| value | cost | net value |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        lines.append(
            f"| {g.key or '(none)'} | {g.decisions} | {g.executed} | {g.holdout} "
            f"| {_pct(g.outcome_rate)} | {_pct(g.engagement_rate)} | {_num(g.value)} "
            f"| {_num(g.cost)} | {_num(g.net_value)} |"
        )
    return lines


def _interval(est: float, low: float, high: float, pct: bool) -> str:
    if not math.isfinite(est):
        return "—"
    f = (lambda v: f"{100 * v:+.2f} pts") if pct else (lambda v: f"{v:+,.2f}")
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{f(est)} (no interval: an arm has < 2 HCPs)"
    return f"{f(est)} [{f(low)}, {f(high)}]"


def markdown(rep: WeeklyReport) -> str:
    """The report as markdown."""
    ch, lf = rep.by_channel, rep.lift
    level = f"{100 * (1 - lf.alpha):.0f} %"
    lines = [
        f"# Weekly NBA report, {ch.since.date()} to {ch.until.date()}",
        "",
        f"Decisions made from {ch.since.isoformat()} to {ch.until.isoformat()} (end "
        f"exclusive), from the event store `{rep.store}`. Outcomes count when credited to "
        f"the chosen action within {ch.window_days:g} days of the decision; value and cost "
        f"by `{ch.value_definition}`. Rates are over executed decisions.",
        "",
        "## Totals",
        "",
        *_kpi_table([ch.total], "period"),
        "",
        "## By channel",
        "",
        *_kpi_table(ch.groups, "channel"),
        "",
        f"![engagement rate and net value by channel; holdout lift]({REPORT_PNG})",
        "",
        "## By market",
        "",
        *_kpi_table(rep.by_market.groups, "market"),
        "",
        f"## Content, best {TOP_CONTENT} by net value",
        "",
    ]
    content = sorted(
        (g for g in rep.by_content.groups if g.decisions),
        key=lambda g: (-g.net_value, g.key),
    )[:TOP_CONTENT]
    lines += [*_kpi_table(content, "content"), ""]
    lines += ["## Suppressions by rule", "", "| rule | actions suppressed |", "|---|---|"]
    supp = ch.total.suppressions
    lines += [f"| `{r}` | {n} |" for r, n in supp.items()] or ["| (none) | 0 |"]
    lines += [
        "",
        "## Lift: treated vs holdout",
        "",
        f"The holdout (HCPs of the rules' global holdout) got `{lf.holdout_policy}`. "
        f"Lift = treated minus holdout mean per executed decision, {level} interval with "
        "HCPs as the sampling unit. Off-policy: the same lift estimated from the treated "
        f"decisions alone ({lf.off_policy_note}).",
        "",
        "| measure | treated | holdout | lift (holdout) | lift (off-policy) |",
        "|---|---|---|---|---|",
    ]
    for m in MEASURES:
        e = lf.holdout[m]
        pct = m == "engagement"
        fmt = _pct if pct else _num
        off: Interval | None = lf.off_policy[m]
        off_txt = "—" if off is None else _interval(off.estimate, off.low, off.high, pct)
        lines.append(
            f"| {_MEASURE_LABEL[m]} | {fmt(e.treated_mean)} ({e.decisions_treated} decisions, "
            f"{e.hcps_treated} HCPs) | {fmt(e.holdout_mean)} ({e.decisions_holdout} decisions, "
            f"{e.hcps_holdout} HCPs) | {_interval(e.difference, e.low, e.high, pct)} "
            f"| {off_txt} |"
        )
    lines.append("")
    return "\n".join(lines)


def plot(rep: WeeklyReport, path: Path) -> None:
    """Engagement rate and net value per channel, and the holdout lift with its
    interval next to the off-policy one, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in rep.by_channel.groups if g.executed]
    names = [g.key for g in groups]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].bar(names, [100 * (g.engagement_rate or 0.0) for g in groups], color="#4c72b0")
    axes[0].set_title("engagement rate (%)")
    axes[1].bar(
        names,
        [g.net_value / g.executed for g in groups],
        color=["#55a868" if g.net_value >= 0 else "#c44e52" for g in groups],
    )
    axes[1].set_title("net value per executed decision")
    axes[1].axhline(0, color="black", linewidth=0.8)
    lf = rep.lift
    e = lf.holdout["engagement"]
    off = lf.off_policy["engagement"]
    points = [("holdout", e.difference, e.low, e.high, "#4c72b0")]
    if off is not None:
        points.append(("off-policy", off.estimate, off.low, off.high, "#dd8452"))
    for x, (_label, est, lo, hi, color) in enumerate(points):
        if not math.isfinite(est):
            continue
        ok = math.isfinite(lo) and math.isfinite(hi)
        err = [[100 * (est - lo)], [100 * (hi - est)]] if ok else None
        axes[2].errorbar([x], [100 * est], yerr=err, fmt="o", color=color, capsize=4)
    axes[2].set_xticks(range(len(points)), [p[0] for p in points])
    axes[2].set_xlim(-0.5, len(points) - 0.5)
    axes[2].axhline(0, color="black", linewidth=0.8)
    axes[2].set_title(f"engagement lift vs holdout ({lf.holdout_policy}), pts")
    for ax in axes[:2]:
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def write(rep: WeeklyReport, out: Path) -> list[Path]:
    """Write ``report.md``, ``kpis.png`` and ``kpis.json`` into ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / REPORT_MD, out / REPORT_PNG, out / REPORT_JSON]
    # each file is written under a hidden name and renamed, so a failure leaves no half file
    tmp_md, tmp_png, tmp_json = (out / f".{p.name}.tmp" for p in paths)
    tmp_md.write_text(markdown(rep), encoding="utf-8")
    plot(rep, tmp_png)
    tmp_json.write_text(json.dumps(rep.as_dict(), indent=2, default=str), encoding="utf-8")
    for tmp, final in zip((tmp_md, tmp_png, tmp_json), paths, strict=True):
        tmp.replace(final)
    return paths
