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

**Reveal (an analysis that cheats).** ``--reveal knowledge,fatigue`` (names
from :data:`REVEALABLE`, or ``all``) appends the named *hidden* state of the
world at decision time to every action line of the regressor only, as the
value for that action's own channel, topic or content item (namespace
``z``, keyed by the action's channel so each channel gets its own weight).
No policy and no product featurizer ever sees these; the point is to measure
how much of the gap between the ceiling and the oracle each hidden quantity
explains. :func:`reveal_study` runs several such sets on one simulation.

>>> c = observable_ceiling(hcps=60, days=6, seed=1, train_days=4, passes=1)
>>> c["v_oracle"] >= c["v_ceiling"] and c["n_test"] > 0
True
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from experiments.push_vs_pull.experiment import normalized_score
from experiments.push_vs_pull.measure import DAY_US, ExperimentError
from nba.features.batch import FeaturizedBatch
from nba.logs import io as logio
from nba.policies.vw import RewardRegressor, VWPolicy
from simulators.hcp.learning import PRESET_INTERACTIONS, PRESETS
from simulators.hcp.population import Population
from simulators.hcp.response import OutcomeProbabilities
from simulators.hcp.world import World

#: hidden quantities :func:`observable_ceiling` can reveal to the regressor, each
#: for the action's own channel / topic / item: the HCP's ``channel_affinity``,
#: ``interest`` (individual topic interest), ``knowledge`` of the topic,
#: ``fatigue`` on the channel, ``seen`` (how often the item reached the HCP),
#: ``unsubscribe`` (hazard, rested), ``primary`` (the exact primary-response
#: logit and probability: everything above together, through the world's link)
REVEALABLE = (
    "channel_affinity",
    "interest",
    "knowledge",
    "fatigue",
    "seen",
    "unsubscribe",
    "primary",
)


def parse_reveal(text: str) -> tuple[str, ...]:
    """Names of ``--reveal`` (comma-separated; ``all``: every name but ``primary``).

    >>> parse_reveal("seen, fatigue")
    ('fatigue', 'seen')
    >>> parse_reveal("")
    ()
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return tuple(n for n in REVEALABLE if n != "primary")
    for n in names:
        if n not in REVEALABLE:
            raise ExperimentError(
                f"ceiling: --reveal: unknown hidden quantity {n!r} "
                f"(known: {', '.join(REVEALABLE)}, or all)"
            )
    return tuple(sorted(set(names), key=REVEALABLE.index))


class _HiddenRecorder:
    """Wraps a world's ``ResponseModel.batch_probabilities`` to keep, for every
    (decision, eligible action) entry, the hidden values behind its response.

    Entries are kept in call order; :meth:`features` checks them against the
    decision log (HCP of each decision, ground truth of each entry) so that a
    change in how the world calls its response model fails loudly instead of
    misaligning the features.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.inner = world.response.batch_probabilities
        self.hcp: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []
        self.cols: dict[str, list[np.ndarray]] = {
            k: []
            for k in (
                "channel",
                "aff",
                "interest",
                "know",
                "fat",
                "seen",
                "unsub",
                "z",
                "p1",
                "truth",
            )
        }
        world.response.batch_probabilities = self  # type: ignore[method-assign]

    def __call__(
        self, pop: Population, hcp: np.ndarray, seg: np.ndarray, action: np.ndarray
    ) -> OutcomeProbabilities:
        probs = self.inner(pop, hcp, seg, action)
        resp = self.world.response
        c = resp.action_channel[action]
        t = resp.action_topic[action]
        it = resp.action_item[action]
        h = hcp[seg]
        p1 = probs.primary
        cols = self.cols
        cols["channel"].append(c)
        cols["aff"].append(pop.channel_affinity[h, c])
        cols["interest"].append(pop.topic_interest[h, t])
        cols["know"].append(pop.knowledge[h, t])
        cols["fat"].append(pop.fatigue[h, c])
        cols["seen"].append(pop.seen[h, it].astype(np.float64))
        cols["unsub"].append(pop.unsubscribe_hazard[h])
        cols["p1"].append(p1)
        cols["z"].append(np.log(np.clip(p1, 1e-12, 1.0)) - np.log(np.clip(1 - p1, 1e-12, 1.0)))
        cols["truth"].append(resp.expected_reward(probs))
        self.hcp.append(np.asarray(hcp, dtype=np.int64))
        self.sizes.append(np.bincount(seg, minlength=hcp.shape[0]).astype(np.int64))
        return probs

    def features(
        self, reveal: tuple[str, ...], dec: pa.Table, gt: pa.Table, hcp_ids: np.ndarray
    ) -> pa.Array:
        """The ``|z`` namespace of every entry, as a list array aligned with ``dec`` rows.

        Parameters
        ----------
        reveal : tuple of str
        dec, gt : pyarrow.Table
            The decision and ground-truth logs, in the order the world wrote them.
        hcp_ids : ndarray of str, shape (n_hcps,)
        """
        hcp = np.concatenate(self.hcp)
        sizes = np.concatenate(self.sizes)
        col = {k: np.concatenate(v) for k, v in self.cols.items()}
        logged = dec.column("hcp_id").to_numpy(zero_copy_only=False)
        truth = gt.column("expected_rewards").combine_chunks()
        if (
            len(hcp) != len(logged)
            or not np.array_equal(hcp_ids[hcp], logged)
            or not np.array_equal(np.diff(np.asarray(truth.offsets)), sizes)
            or not np.array_equal(np.asarray(truth.values), col["truth"])
        ):
            raise ExperimentError(
                "ceiling: --reveal: the recorded hidden state does not line up with the "
                "decision log"
            )
        chans = np.asarray(self.world.response.channels, dtype=object)[col["channel"]]
        parts: list[np.ndarray] = []

        def add(prefix: str, values: np.ndarray) -> None:
            parts.append(
                np.char.add(
                    np.char.add(np.char.add(prefix + "_", chans.astype(str)), ":"),
                    np.char.mod("%.5g", values),
                ).astype(object)
            )

        if "channel_affinity" in reveal:
            add("ca", col["aff"])
        if "interest" in reveal:
            add("ti", col["interest"])
        if "knowledge" in reveal:
            add("kn", col["know"])
        if "fatigue" in reveal:
            add("fa", col["fat"])
        if "seen" in reveal:
            add("se", col["seen"])
        if "unsubscribe" in reveal:
            add("uh", col["unsub"])
        if "primary" in reveal:
            add("lg", col["z"])
            add("p1", col["p1"])
        text = np.full(len(chans), "|z", dtype=object)
        for part in parts:
            text = text + " " + part
        offsets = np.zeros(len(sizes) + 1, dtype=np.int32)
        np.cumsum(sizes, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(text, pa.string()))


def observable_ceiling(
    hcps: int = 2000,
    days: int = 60,
    seed: int = 3,
    train_days: int = 40,
    passes: int = 3,
    reveal: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Normalized score of a full-information greedy policy on observable features.

    Parameters
    ----------
    reveal : tuple of str
        Hidden quantities (:data:`REVEALABLE`) added to the regressor's features:
        an analysis that cheats (see the module docstring). Empty: the honest ceiling.

    Returns
    -------
    dict
        ``v_uniform``, ``v_ceiling``, ``v_oracle`` (mean ground-truth reward per
        test decision), ``score`` (the normalized score of the ceiling policy),
        ``n_train``, ``n_test``, ``reveal``, and the setup.
    """
    return reveal_study(hcps, days, seed, train_days, passes, [reveal])[0]


def reveal_study(
    hcps: int,
    days: int,
    seed: int,
    train_days: int,
    passes: int,
    reveals: list[tuple[str, ...]],
) -> list[dict[str, Any]]:
    """:func:`observable_ceiling` for several reveal sets on one simulated log.

    Returns
    -------
    list of dict
        One result per entry of ``reveals``, in order.
    """
    if not 0 < train_days < days:
        raise ExperimentError(f"ceiling: train_days must be in 1..{days - 1}, got {train_days}")
    for r in reveals:
        parse_reveal(",".join(r))
    tmp = Path(tempfile.mkdtemp(prefix="pvp-ceiling-"))
    try:
        world = World(hcps, seed=seed)
        rec = _HiddenRecorder(world) if any(reveals) else None
        world.run(days, policy="uniform", out=tmp / "logs")
        dec = logio.read(tmp / "logs", "decisions")
        gt = logio.read(tmp / "logs", "ground_truth")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    hidden = {
        r: rec.features(r, dec, gt, world.population.hcp_ids)
        for r in reveals
        if r and rec is not None
    }
    by_id = pa.array(
        np.argsort(np.asarray(dec.column("event_id").to_numpy(zero_copy_only=False)), kind="stable")
    )
    dec, gt = dec.take(by_id), gt.take(by_id)
    hidden = {r: h.take(by_id) for r, h in hidden.items()}
    if not pc.all(pc.equal(dec.column("event_id"), gt.column("event_id"))).as_py():
        raise ExperimentError("ceiling: ground truth and decisions do not line up")
    ts = np.asarray(dec.column("ts").cast(pa.int64()), dtype=np.int64)
    order = pa.array(np.argsort(ts, kind="stable"))
    dec, gt, ts = dec.take(order), gt.take(order), ts[np.asarray(order)]
    hidden = {r: h.take(order) for r, h in hidden.items()}
    day = (ts - ts.min()) // DAY_US
    n_train = int(np.searchsorted(day, train_days))
    lists = gt.column("expected_rewards").combine_chunks()
    off = np.asarray(lists.offsets, dtype=np.int64)
    truth = np.asarray(lists.values, dtype=np.float64)
    pol = VWPolicy(PRESETS["epsilon"], seed=seed)
    feat = pol.featurizer
    pol.close()
    train0 = feat.featurize_table(dec.slice(0, n_train))
    test0 = feat.featurize_table(dec.slice(n_train))
    t_off = off[n_train:] - off[n_train]
    t_truth = truth[off[n_train] :]
    n_test = len(t_off) - 1
    sizes = np.diff(t_off)
    seg = np.repeat(np.arange(n_test), sizes)
    v_uniform = float((np.add.reduceat(t_truth, t_off[:-1]) / sizes).mean())
    v_oracle = float(np.maximum.reduceat(t_truth, t_off[:-1]).mean())
    out = []
    for r in reveals:
        train, test = train0, test0
        if r:
            z = hidden[r]
            train = _with_namespace(train0, z.slice(0, n_train))
            test = _with_namespace(test0, z.slice(n_train))
        reg = RewardRegressor(feat, interactions=PRESET_INTERACTIONS, passes=passes, seed=seed)
        reg.fit(train, np.arange(int(off[n_train])), truth[: off[n_train]])
        pred = reg.predict(test)
        best_pred = np.maximum.reduceat(pred, t_off[:-1])
        first = np.minimum.reduceat(
            np.where(pred == best_pred[seg], np.arange(len(pred)), len(pred)), t_off[:-1]
        )
        v_ceiling = float(t_truth[first].mean())
        out.append(
            {
                "hcps": hcps,
                "days": days,
                "seed": seed,
                "train_days": train_days,
                "passes": passes,
                "interactions": ",".join(PRESET_INTERACTIONS),
                "reveal": ",".join(r),
                "n_train": n_train,
                "n_test": n_test,
                "v_uniform": v_uniform,
                "v_ceiling": v_ceiling,
                "v_oracle": v_oracle,
                "score": normalized_score(v_ceiling, v_uniform, v_oracle),
            }
        )
    return out


def _with_namespace(batch: FeaturizedBatch, extra: pa.Array) -> FeaturizedBatch:
    """``batch`` with ``extra`` (a list array, one list per decision, one string
    per action line) appended to its action lines."""
    flat = pc.list_flatten(extra)
    if len(flat) != len(batch.actions):
        raise ExperimentError("ceiling: --reveal: feature count does not match the action lines")
    actions = pc.binary_join_element_wise(batch.actions, flat, " ")
    return FeaturizedBatch(batch.shared, actions, batch.offsets)


@click.command()
@click.option("--hcps", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--days", type=click.IntRange(min=2), default=60, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--train-days", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--passes", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--reveal",
    "reveals",
    multiple=True,
    help="ANALYSIS THAT CHEATS: give the regressor these hidden quantities of the world "
    f"(comma-separated from {', '.join(REVEALABLE)}, or all); repeat the option to "
    "score several sets on one simulation; '' is the honest ceiling.",
)
def cli(
    hcps: int, days: int, seed: int, train_days: int, passes: int, reveals: tuple[str, ...]
) -> None:
    """Full-information ceiling of the normalized score on observable features."""
    try:
        sets = [parse_reveal(r) for r in reveals] or [()]
        results = reveal_study(hcps, days, seed, train_days, passes, sets)
    except ExperimentError as exc:
        raise click.ClickException(str(exc)) from exc
    for c in results:
        label = f"revealed [{c['reveal']}] " if c["reveal"] else ""
        click.echo(
            f"{label}{c['n_test']} test decisions (days {train_days + 1}-{days}), trained on "
            f"{c['n_train']}: uniform {c['v_uniform']:.4f}, full-information greedy "
            f"{c['v_ceiling']:.4f}, oracle {c['v_oracle']:.4f}: "
            f"score {100 * c['score']:.1f} %"
        )


def main() -> None:
    """Run :func:`cli`."""
    cli()


if __name__ == "__main__":
    main()
