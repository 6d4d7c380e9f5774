"""The simulated HCP population: observable profiles and hidden state as arrays.

>>> from nba.catalog import Catalog
>>> pop = Population.generate(50, Catalog.default(), seed=3)
>>> pop.n, pop.profile(0) == Population.generate(50, Catalog.default(), seed=3).profile(0)
(50, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from nba.catalog import Catalog
from nba.domain import ADOPTION_STAGES, HCPProfile
from nba.logs.schema import HCPS
from simulators.hcp.config import SimulatorConfigError, WorldConfig

F64 = npt.NDArray[np.float64]


@dataclass
class Population:
    """Arrays describing ``n`` HCPs. Observable fields first, hidden state after.

    Attributes
    ----------
    hcp_ids : ndarray of str, shape (n,)
    specialties : tuple of str
        Names behind ``specialty``: the HCP vocabulary (``nba/data/hcp_features.toml``).
    specialty : ndarray of int16, shape (n,)
    decile : ndarray of int8, shape (n,)
        1..10.
    markets : tuple of str
        Names behind ``market`` (the catalog's markets).
    market : ndarray of int16, shape (n,)
    stage : ndarray of int8, shape (n,)
        Index into :data:`nba.domain.ADOPTION_STAGES`.
    channels : tuple of str
        The catalog's channels (columns of the per-channel arrays).
    consent : ndarray of bool, shape (n, n_channels)
    no_see : ndarray of bool, shape (n,)
    digital_affinity : ndarray of float64, shape (n,)
        In [0, 1], rounded to 3 decimals.
    channel_affinity : ndarray of float64, shape (n, n_channels)
        Hidden: logit shift per channel.
    topic_interest : ndarray of float64, shape (n, n_topics)
        Hidden: logit shift per catalog topic.
    knowledge : ndarray of float64, shape (n, n_topics)
        Hidden: 0 (nothing known) .. 1.
    fatigue : ndarray of float64, shape (n, n_channels)
        Hidden: rises by 1 per touch, decays daily.
    unsubscribe_hazard : ndarray of float64, shape (n,)
        Hidden: per-email unsubscribe probability when rested.
    seen : ndarray of int16, shape (n, n_items)
        Hidden: how often each content item reached the HCP.
    channel_boost : ndarray of float64, shape (n, n_channels), optional
        Hidden, transient: logit shift per channel while the HCP waits for a visit it
        requested (docs/simulator.md, "Visit requests"); ``None`` when the world
        draws no visit requests.
    """

    hcp_ids: npt.NDArray[np.str_]
    specialties: tuple[str, ...]
    specialty: npt.NDArray[np.int16]
    decile: npt.NDArray[np.int8]
    markets: tuple[str, ...]
    market: npt.NDArray[np.int16]
    stage: npt.NDArray[np.int8]
    channels: tuple[str, ...]
    consent: npt.NDArray[np.bool_]
    no_see: npt.NDArray[np.bool_]
    digital_affinity: F64
    channel_affinity: F64
    topic_interest: F64
    knowledge: F64
    fatigue: F64
    unsubscribe_hazard: F64
    seen: npt.NDArray[np.int16]
    channel_boost: F64 | None = None

    @property
    def n(self) -> int:
        return int(self.hcp_ids.shape[0])

    @classmethod
    def generate(
        cls,
        n: int,
        catalog: Catalog,
        seed: int | np.random.SeedSequence = 0,
        config: WorldConfig | None = None,
    ) -> Population:
        """Draw ``n`` HCPs from the distributions in ``config``.

        Parameters
        ----------
        n : int
            Number of HCPs (>= 1).
        catalog : Catalog
            Supplies markets, channels and topics.
        seed : int or SeedSequence
            Seeds this population's own generator.
        config : WorldConfig, optional
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise SimulatorConfigError(f"Population: n must be a positive integer, got {n!r}")
        cfg = config or WorldConfig()
        rng = np.random.default_rng(seed)
        specs = cfg.specialties  # the HCP vocabulary; those without a share get none
        shares = np.array([cfg.specialty_shares.get(s, 0.0) for s in specs], dtype=np.float64)
        specialty = rng.choice(len(specs), size=n, p=shares / shares.sum()).astype(np.int16)
        dec_w = np.arange(1, 11, dtype=np.float64) ** -cfg.decile_skew
        decile = (rng.choice(10, size=n, p=dec_w / dec_w.sum()) + 1).astype(np.int8)
        markets = catalog.markets
        market = rng.integers(0, len(markets), size=n).astype(np.int16)
        st = np.asarray(cfg.stage_shares, dtype=np.float64)
        stage = rng.choice(len(ADOPTION_STAGES), size=n, p=st / st.sum()).astype(np.int8)
        channels = catalog.channels
        rates = np.array([cfg.consent_rates.get(c, 0.75) for c in channels])
        consent = rng.random((n, len(channels))) < rates
        no_see = rng.random(n) < cfg.no_see_rate
        a, b = cfg.digital_affinity_beta
        digital = np.round(rng.beta(a, b, size=n), 3)
        chan_aff = rng.normal(0.0, cfg.channel_affinity_sd, size=(n, len(channels)))
        topics = catalog.topics
        bias = np.zeros((len(specs), len(topics)))
        for i, s in enumerate(specs):
            for j, t in enumerate(topics):
                bias[i, j] = cfg.specialty_topic_bias.get(s, {}).get(t, 0.0)
        interest = bias[specialty] + rng.normal(0.0, cfg.topic_interest_sd, size=(n, len(topics)))
        # knowledge grows with the adoption stage, with individual spread
        mean_k = (stage.astype(np.float64) + 0.5) / (len(ADOPTION_STAGES) + 1)
        knowledge = np.clip(mean_k[:, None] + rng.normal(0, 0.12, size=(n, len(topics))), 0, 1)
        hazard = cfg.unsubscribe_base * np.exp(rng.normal(0.0, cfg.unsubscribe_sd, size=n))
        ids = np.char.add("hcp-", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
        return cls(
            hcp_ids=ids.astype(str),
            specialties=specs,
            specialty=specialty,
            decile=decile,
            markets=markets,
            market=market,
            stage=stage,
            channels=channels,
            consent=consent,
            no_see=no_see,
            digital_affinity=digital,
            channel_affinity=chan_aff,
            topic_interest=interest,
            knowledge=knowledge,
            fatigue=np.zeros((n, len(channels))),
            unsubscribe_hazard=np.minimum(hazard, 0.2),
            seen=np.zeros((n, len(catalog.items)), dtype=np.int16),
        )

    # ----------------------------------------------------------- observable
    def profile(self, i: int) -> HCPProfile:
        """The observable profile of HCP ``i`` as it is now."""
        return HCPProfile(
            hcp_id=str(self.hcp_ids[i]),
            specialty=self.specialties[int(self.specialty[i])],
            decile=int(self.decile[i]),
            market=self.markets[int(self.market[i])],
            adoption_stage=ADOPTION_STAGES[int(self.stage[i])],
            consents=frozenset(
                c for c, ok in zip(self.channels, self.consent[i], strict=True) if ok
            ),
            no_see=bool(self.no_see[i]),
            digital_affinity=float(self.digital_affinity[i]),
        )

    def profile_json(self, idx: npt.NDArray[np.int64]) -> list[str]:
        """Canonical JSON of the profiles of HCPs ``idx`` (shape (k,)), as inside a
        logged context: the text of ``json.dumps(self.profile(i).to_dict(),
        sort_keys=True, separators=(",", ":"))``, written from each field's JSON
        (names and consent lists rendered once per distinct value), keys in
        sorted order.

        >>> from nba.catalog import Catalog
        >>> pop = Population.generate(5, Catalog.default(), seed=3)
        >>> pop.profile_json(np.array([2]))[0] == json.dumps(
        ...     pop.profile(2).to_dict(), sort_keys=True, separators=(",", ":"))
        True
        """
        idx = np.asarray(idx, dtype=np.int64)
        if idx.shape[0] == 0:
            return []
        dumps = json.dumps
        stages = [dumps(s) for s in ADOPTION_STAGES]
        specialties = [dumps(s) for s in self.specialties]
        markets = [dumps(m) for m in self.markets]
        # consents: one JSON list per distinct consent row (sorted channel names)
        weights = 1 << np.arange(len(self.channels), dtype=np.int64)
        codes = self.consent[idx].astype(np.int64) @ weights
        consents = {
            code: dumps(
                sorted(c for j, c in enumerate(self.channels) if code >> j & 1),
                separators=(",", ":"),
            )
            for code in np.unique(codes).tolist()
        }
        return [
            f'{{"adoption_stage":{stages[st]},"consents":{consents[cc]},"decile":{dc},'
            f'"digital_affinity":{float(da)!r},"hcp_id":{dumps(hid)},'
            f'"market":{markets[mk]},"no_see":{"true" if ns else "false"},'
            f'"specialty":{specialties[sp]}}}'
            for st, cc, dc, da, hid, mk, ns, sp in zip(
                self.stage[idx].tolist(),
                codes.tolist(),
                self.decile[idx].tolist(),
                self.digital_affinity[idx].tolist(),
                self.hcp_ids[idx].tolist(),
                self.market[idx].tolist(),
                self.no_see[idx].tolist(),
                self.specialty[idx].tolist(),
                strict=True,
            )
        ]

    def to_table(self) -> pa.Table:
        """Observable profiles as an Arrow table with schema :data:`nba.logs.schema.HCPS`."""
        chans = np.array(self.channels, dtype=object)
        consents = [sorted(chans[row].tolist()) for row in self.consent]
        return pa.table(
            {
                "hcp_id": pa.array(self.hcp_ids.tolist(), pa.string()),
                "specialty": pa.array([self.specialties[s] for s in self.specialty], pa.string()),
                "decile": pa.array(self.decile, pa.int8()),
                "market": pa.array([self.markets[m] for m in self.market], pa.string()),
                "adoption_stage": pa.array([ADOPTION_STAGES[s] for s in self.stage], pa.string()),
                "consents": pa.array(consents, pa.list_(pa.string())),
                "no_see": pa.array(self.no_see, pa.bool_()),
                "digital_affinity": pa.array(self.digital_affinity, pa.float64()),
            },
            schema=HCPS,
        )
