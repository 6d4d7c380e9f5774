"""How far can the featurizer's features take any learner? A full-information
ceiling for the normalized score.

A uniform-logged world is simulated; a VW squared-loss regression
(:class:`nba.policies.vw.RewardRegressor`, the same features and interactions
as the VW presets) is fitted to the **ground-truth expected reward of every
eligible action** of the first ``train_days`` days: full information, no
bandit feedback, no outcome noise, no exploration cost. Its greedy choice on
the later decisions is then scored with the ground truth against uniform and
the oracle on the same decisions. A bandit learner, which sees one noisy
reward per decision a window later, should not be expected to beat this
number; if it is far below the target, the features (what the world lets a
policy observe) are the limit, not the learner.

``python -m experiments.push_vs_pull.ceiling --hcps 2000 --days 60 --seed 3``

>>> c = observable_ceiling(hcps=60, days=6, seed=1, train_days=4, passes=1)
>>> c["v_oracle"] >= c["v_ceiling"] and c["n_test"] > 0
True
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from experiments.push_vs_pull.experiment import normalized_score
from experiments.push_vs_pull.measure import DAY_US, ExperimentError
from nba.logs import io as logio
from nba.policies.vw import RewardRegressor, VWPolicy
from simulators.hcp.learning import PRESET_INTERACTIONS, PRESETS
from simulators.hcp.world import World


def observable_ceiling(
    hcps: int = 2000, days: int = 60, seed: int = 3, train_days: int = 40, passes: int = 3
) -> dict[str, Any]:
    """Normalized score of a full-information greedy policy on observable features.

    Returns
    -------
    dict
        ``v_uniform``, ``v_ceiling``, ``v_oracle`` (mean ground-truth reward per
        test decision), ``score`` (the normalized score of the ceiling policy),
        ``n_train``, ``n_test``, and the setup.
    """
    if not 0 < train_days < days:
        raise ExperimentError(f"ceiling: train_days must be in 1..{days - 1}, got {train_days}")
    tmp = Path(tempfile.mkdtemp(prefix="pvp-ceiling-"))
    try:
        world = World(hcps, seed=seed)
        world.run(days, policy="uniform", out=tmp / "logs")
        dec = logio.read(tmp / "logs", "decisions").sort_by("event_id")
        gt = logio.read(tmp / "logs", "ground_truth").sort_by("event_id")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not pc.all(pc.equal(dec.column("event_id"), gt.column("event_id"))).as_py():
        raise ExperimentError("ceiling: ground truth and decisions do not line up")
    ts = np.asarray(dec.column("ts").cast(pa.int64()), dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    dec, gt, ts = dec.take(pa.array(order)), gt.take(pa.array(order)), ts[order]
    day = (ts - ts.min()) // DAY_US
    n_train = int(np.searchsorted(day, train_days))
    lists = gt.column("expected_rewards").combine_chunks()
    off = np.asarray(lists.offsets, dtype=np.int64)
    truth = np.asarray(lists.values, dtype=np.float64)
    pol = VWPolicy(PRESETS["epsilon"], seed=seed)
    feat = pol.featurizer
    pol.close()
    train = feat.featurize_table(dec.slice(0, n_train))
    test = feat.featurize_table(dec.slice(n_train))
    reg = RewardRegressor(feat, interactions=PRESET_INTERACTIONS, passes=passes, seed=seed)
    reg.fit(train, np.arange(int(off[n_train])), truth[: off[n_train]])
    pred = reg.predict(test)
    t_off = off[n_train:] - off[n_train]
    t_truth = truth[off[n_train] :]
    n_test = len(t_off) - 1
    sizes = np.diff(t_off)
    seg = np.repeat(np.arange(n_test), sizes)
    best_pred = np.maximum.reduceat(pred, t_off[:-1])
    first = np.minimum.reduceat(
        np.where(pred == best_pred[seg], np.arange(len(pred)), len(pred)), t_off[:-1]
    )
    v_ceiling = float(t_truth[first].mean())
    v_uniform = float((np.add.reduceat(t_truth, t_off[:-1]) / sizes).mean())
    v_oracle = float(np.maximum.reduceat(t_truth, t_off[:-1]).mean())
    return {
        "hcps": hcps,
        "days": days,
        "seed": seed,
        "train_days": train_days,
        "passes": passes,
        "interactions": ",".join(PRESET_INTERACTIONS),
        "n_train": n_train,
        "n_test": n_test,
        "v_uniform": v_uniform,
        "v_ceiling": v_ceiling,
        "v_oracle": v_oracle,
        "score": normalized_score(v_ceiling, v_uniform, v_oracle),
    }


def main() -> None:
    import click

    @click.command()
    @click.option("--hcps", type=click.IntRange(min=1), default=2000, show_default=True)
    @click.option("--days", type=click.IntRange(min=2), default=60, show_default=True)
    @click.option("--seed", type=click.IntRange(min=0), default=3, show_default=True)
    @click.option("--train-days", type=click.IntRange(min=1), default=40, show_default=True)
    @click.option("--passes", type=click.IntRange(min=1), default=3, show_default=True)
    def cli(hcps: int, days: int, seed: int, train_days: int, passes: int) -> None:
        """Full-information ceiling of the normalized score on observable features."""
        try:
            c = observable_ceiling(hcps, days, seed, train_days, passes)
        except ExperimentError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"{c['n_test']} test decisions (days {train_days + 1}-{days}), trained on "
            f"{c['n_train']}: uniform {c['v_uniform']:.4f}, full-information greedy "
            f"{c['v_ceiling']:.4f}, oracle {c['v_oracle']:.4f}: score {100 * c['score']:.1f} %"
        )

    cli()


if __name__ == "__main__":
    main()
