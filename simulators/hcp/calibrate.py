"""Measure the simulator's calibration figures (``docs/simulator.md`` quotes them).

``python -m simulators.hcp.calibrate [--hcps N] [--days D] [--seed S]`` runs
every built-in policy on the same world and prints email open/click/unsubscribe
rates overall and by specialty, the unsubscribe rate by email load, the no-see
share, the pull signals per kind and channel, and the lift of the oracle over
the campaign.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from nba.logs import io as logio
from simulators.hcp.world import simulate


def email_rates(out: Path) -> dict[str, Any]:
    """Email rates overall, by specialty and by emails received in the previous 30 days."""
    dec = logio.read(
        out, "decisions", columns=["event_id", "hcp_id", "chosen_action_id", "context"]
    ).to_pandas()
    dec = dec[dec.chosen_action_id.str.endswith("@email")]
    oc = logio.read(out, "outcomes", columns=["event_id", "type"]).to_pandas()
    pop = pq.read_table(out / "population.parquet").to_pandas()[["hcp_id", "specialty"]]
    flags = oc.pivot_table(index="event_id", columns="type", aggfunc="size", fill_value=0)
    d = dec.merge(pop, on="hcp_id").merge(flags, left_on="event_id", right_index=True, how="left")
    d = d.fillna(0)
    for t in ("delivered", "opened", "clicked", "unsubscribed"):
        if t not in d:
            d[t] = 0
    deliv = d[d.delivered > 0]
    by_spec = deliv.groupby("specialty").opened.mean().sort_values()
    load = deliv.context.str.extract(r'"touches_30d":\{[^}]*"email":(\d+)')[0]
    deliv = deliv.assign(load=np.minimum(load.fillna("0").astype(int), 8))
    by_load = deliv.groupby("load").agg(
        emails=("unsubscribed", "size"), unsub=("unsubscribed", "mean")
    )
    return {
        "emails": len(d),
        "open_rate": float(deliv.opened.mean()),
        "click_rate": float(deliv.clicked.mean()),
        "click_to_open": float(deliv.clicked.sum() / max(deliv.opened.sum(), 1)),
        "unsubscribe_rate": float(deliv.unsubscribed.mean()),
        "open_rate_by_specialty": {k: round(float(v), 4) for k, v in by_spec.items()},
        "unsubscribe_by_emails_30d": {
            int(k): (int(r.emails), round(float(r.unsub), 5)) for k, r in by_load.iterrows()
        },
    }


def pull_rates(out: Path, days: int) -> dict[str, Any]:
    """Pull signals of a run: counts and rates per kind and channel.

    Rates: detail pulls per held visit/call with topics and slides per detail and
    dwell; email clicks per delivered email; portal views per portal-registered HCP
    per 30 days with dwell and the share landing on a topic page (no approved
    portal item); webinar questions per attended webinar.
    """
    t = logio.read(out, "touches").to_pandas()
    oc = logio.read(out, "outcomes", columns=["type"]).to_pandas()
    pop = pq.read_table(out / "population.parquet").to_pandas()
    n_type = oc.type.value_counts()
    p = t[t.kind != "contact"]
    res: dict[str, Any] = {
        "touches_by_kind": {k: int(v) for k, v in p.kind.value_counts().sort_index().items()},
        "by_kind_and_channel": {
            f"{k}@{c}": int(v) for (k, c), v in p.groupby(["kind", "channel"]).size().items()
        },
    }
    det = p[p.kind == "detail_pull"]
    for ch, held in (("rep_visit", "meeting_held"), ("remote_call", "call_held")):
        d = det[det.channel == ch]
        if len(d):
            res[f"detail_pull@{ch}"] = {
                "per_held": round(len(d) / max(int(n_type.get(held, 0)), 1), 3),
                "topics_per_detail": round(float(d.topics.map(len).mean()), 2),
                "slides_per_detail": round(float(d.content_ids.map(len).mean()), 2),
                "dwell_s_median": round(float(d.dwell_s.median()), 1),
                "dwell_s_p90": round(float(d.dwell_s.quantile(0.9)), 1),
            }
    clicks = int((p.kind == "email_click").sum())
    res["email_click_per_delivered"] = round(clicks / max(int(n_type.get("delivered", 0)), 1), 4)
    views = p[p.kind == "portal_view"]
    registered = int(pop.consents.map(lambda c: "portal" in c).sum())
    res["portal_view"] = {
        "per_registered_hcp_per_30d": round(len(views) / max(registered, 1) * 30 / days, 3),
        "hcps_with_a_view": round(views.hcp_id.nunique() / max(registered, 1), 3),
        "dwell_s_median": round(float(views.dwell_s.median()), 1) if len(views) else None,
        "share_on_topic_pages": round(float(views.content_id.str.startswith("portal:").mean()), 3)
        if len(views)
        else None,
    }
    questions = int((p.kind == "webinar_question").sum())
    res["webinar_questions_per_attended"] = round(
        questions / max(int(n_type.get("attended", 0)), 1), 3
    )
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hcps", type=int, default=5000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for policy in ("uniform", "campaign", "segment", "oracle"):
            out = Path(tmp) / policy
            s = simulate(args.hcps, args.days, policy, seed=args.seed, out=out)
            results[policy] = s
            print(s.format())
            if policy == "campaign":
                rates = email_rates(out)
                print("campaign email calibration:")
                for k, v in rates.items():
                    print(f"  {k}: {v}")
                print("campaign pull signals:")
                for k, v in pull_rates(out, args.days).items():
                    print(f"  {k}: {v}")
            print()
    c, o = results["campaign"], results["oracle"]
    print("mean reward per decision (ground truth of chosen actions):")
    for k, s in results.items():
        print(f"  {k:<9} {s.expected_reward_mean:.4f}  realised {s.reward_mean:.4f}")
    print(f"oracle / campaign lift: {o.expected_reward_mean / c.expected_reward_mean:.2f}x")


if __name__ == "__main__":
    main()
