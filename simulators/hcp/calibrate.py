"""Measure the simulator's calibration figures (``docs/simulator.md`` quotes them).

``python -m simulators.hcp.calibrate [--hcps N] [--days D] [--seed S]`` runs
every built-in policy on the same world and prints email open/click/unsubscribe
rates overall and by specialty, the unsubscribe rate by email load, the no-see
share, and the lift of the oracle over the campaign.
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
            print()
    c, o = results["campaign"], results["oracle"]
    print("mean reward per decision (ground truth of chosen actions):")
    for k, s in results.items():
        print(f"  {k:<9} {s.expected_reward_mean:.4f}  realised {s.reward_mean:.4f}")
    print(f"oracle / campaign lift: {o.expected_reward_mean / c.expected_reward_mean:.2f}x")


if __name__ == "__main__":
    main()
