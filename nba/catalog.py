"""The content catalog: approved content items, the channels they travel on and
the markets where they are approved.

A catalog is a TOML file::

    brand = "Veloran"
    channels = ["rep_visit", "email", ...]   # channels this deployment uses
    topics = ["efficacy", "safety", ...]
    formats = ["detail_aid", ...]

    [[items]]
    id = "VEL-EFF-01"
    title = "..."
    topic = "efficacy"
    format = "detail_aid"
    channels = ["rep_visit", "remote_call"]
    approvals = [{ market = "US", start = 2025-06-01, expiry = 2027-06-01 }]

Its version is a hash of its parsed content, so re-formatting the file does not
change the version but changing any field does.

>>> cat = Catalog.default()
>>> len(cat.items) >= 40 and len(cat.topics) >= 8 and len(cat.channels) >= 5
True
>>> cat.version == Catalog.default().version
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.domain import Action, Approval, ContentItem, Touch, ValidationError, read_toml

DEFAULT_CATALOG = "catalog.toml"


class CatalogError(ValidationError):
    """A catalog file is invalid; the message names the file, the item and the field."""


def _default_path() -> Path:
    # from __file__, not importlib.resources: an editable install can expose `nba`
    # as a namespace package, whose resources cannot be resolved
    return Path(__file__).resolve().parent / "data" / DEFAULT_CATALOG


def _as_date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise CatalogError(f"{where}: {value!r} is not a date (YYYY-MM-DD)")


def _canonical(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(data.items())}
    if isinstance(data, list | tuple):
        return [_canonical(v) for v in data]
    if isinstance(data, date):
        return data.isoformat()
    return data


@dataclass(frozen=True)
class Catalog:
    """A validated content catalog.

    Attributes
    ----------
    brand : str
    channels, topics, formats : tuple of str
        The vocabularies items are checked against.
    items : tuple of ContentItem
        In file order.
    version : str
        Hash of the parsed content.
    source : str
        Where it was loaded from (for error messages and reports).
    """

    brand: str
    channels: tuple[str, ...]
    topics: tuple[str, ...]
    formats: tuple[str, ...]
    items: tuple[ContentItem, ...]
    version: str
    source: str = "<memory>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """Load and validate a catalog file."""
        p = Path(path)
        data = read_toml(p, CatalogError, "catalog")
        return cls.from_dict(data, source=str(p))

    @classmethod
    def default(cls) -> Catalog:
        """The catalog shipped with the package (fictional brand)."""
        return cls.load(_default_path())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<memory>") -> Catalog:
        """Validate parsed catalog content; errors name ``source``, item and field."""

        def err(where: str, fieldname: str, problem: str) -> CatalogError:
            return CatalogError(f"{source}: {where}: field '{fieldname}': {problem}")

        def str_list(value: Any, where: str, fieldname: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise err(where, fieldname, "must be a list of non-empty strings")
            if len(set(value)) != len(value):
                raise err(where, fieldname, "lists a value twice")
            return tuple(value)

        brand = data.get("brand")
        if not isinstance(brand, str) or not brand:
            raise err("catalog", "brand", "must be a non-empty string")
        channels = str_list(data.get("channels"), "catalog", "channels")
        topics = str_list(data.get("topics"), "catalog", "topics")
        formats = str_list(data.get("formats"), "catalog", "formats")
        raw_items = data.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise err("catalog", "items", "must be a non-empty list of [[items]] tables")

        items: list[ContentItem] = []
        seen: dict[str, int] = {}
        for pos, raw in enumerate(raw_items):
            if not isinstance(raw, Mapping):
                raise err(f"item #{pos + 1}", "items", "must be a table")
            item_id = raw.get("id")
            where = f"item '{item_id}'" if item_id else f"item #{pos + 1}"
            if not isinstance(item_id, str) or not item_id:
                raise err(where, "id", "must be a non-empty string")
            if item_id in seen:
                raise err(where, "id", f"duplicate id (first at item #{seen[item_id] + 1})")
            seen[item_id] = pos
            for key in ("title", "topic", "format"):
                if not isinstance(raw.get(key), str) or not raw.get(key):
                    raise err(where, key, "must be a non-empty string")
            if raw["topic"] not in topics:
                raise err(where, "topic", f"unknown topic {raw['topic']!r}")
            if raw["format"] not in formats:
                raise err(where, "format", f"unknown format {raw['format']!r}")
            item_channels = raw.get("channels")
            if not isinstance(item_channels, list) or not item_channels:
                raise err(where, "channels", "must list at least one channel")
            for ch in item_channels:
                if ch not in channels:
                    raise err(where, "channels", f"unknown channel {ch!r}")
            raw_approvals = raw.get("approvals")
            if not isinstance(raw_approvals, list) or not raw_approvals:
                raise err(where, "approvals", "item is approved in no market")
            approvals: list[Approval] = []
            markets_seen: set[str] = set()
            for j, ap in enumerate(raw_approvals):
                awhere = f"{where}, approval #{j + 1}"
                if not isinstance(ap, Mapping):
                    raise err(awhere, "approvals", "must be a table {market, start, expiry}")
                market = ap.get("market")
                if not isinstance(market, str) or not market:
                    raise err(awhere, "market", "must be a non-empty string")
                if market in markets_seen:
                    raise err(awhere, "market", f"market {market!r} approved twice")
                markets_seen.add(market)
                start = _as_date(ap.get("start"), f"{source}: {awhere}: field 'start'")
                expiry = _as_date(ap.get("expiry"), f"{source}: {awhere}: field 'expiry'")
                if expiry <= start:
                    raise err(awhere, "expiry", f"expiry {expiry} is not after start {start}")
                approvals.append(Approval(market, start, expiry))
            try:
                items.append(
                    ContentItem(
                        id=item_id,
                        title=raw["title"],
                        topic=raw["topic"],
                        format=raw["format"],
                        channels=tuple(item_channels),
                        approvals=tuple(approvals),
                    )
                )
            except ValidationError as exc:
                raise CatalogError(f"{source}: {exc}") from exc

        canonical = json.dumps(_canonical(data), sort_keys=True, separators=(",", ":"))
        version = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
        return cls(
            brand=brand,
            channels=channels,
            topics=topics,
            formats=formats,
            items=tuple(items),
            version=version,
            source=source,
            raw=_canonical(data),
        )

    # ------------------------------------------------------------------ queries
    @cached_property
    def by_id(self) -> dict[str, ContentItem]:
        return {it.id: it for it in self.items}

    @cached_property
    def markets(self) -> tuple[str, ...]:
        """Every market any item is approved in, sorted."""
        return tuple(sorted({a.market for it in self.items for a in it.approvals}))

    @cached_property
    def actions(self) -> tuple[Action, ...]:
        """Every (item, channel) pair, in catalog order (items, then their channels)."""
        return tuple(a for it in self.items for a in it.actions())

    @cached_property
    def action_ids(self) -> tuple[str, ...]:
        return tuple(a.action_id for a in self.actions)

    @cached_property
    def action_index(self) -> dict[str, int]:
        return {aid: i for i, aid in enumerate(self.action_ids)}

    def check_terms(self, vocabulary: str, values: Iterable[str], where: str) -> None:
        """Refuse any of ``values`` that is not in this catalog's ``vocabulary``.

        Parameters
        ----------
        vocabulary : {"channels", "topics", "formats"}
        values : iterable of str
        where : str
            What the values are (a field, a column), named in the error.

        Raises
        ------
        CatalogError
            Naming the first unknown value and every allowed one.

        >>> Catalog.default().check_terms("topics", ["dosing", "dosng"], "touch.topics")
        Traceback (most recent call last):
        ...
        nba.catalog.CatalogError: touch.topics: 'dosng' is not one of the catalog's topics: ...
        """
        allowed: tuple[str, ...] = getattr(self, vocabulary)
        for v in values:
            if v not in allowed:
                raise CatalogError(
                    f"{where}: {v!r} is not one of the catalog's {vocabulary}: {', '.join(allowed)}"
                )

    def check_touch(self, touch: Touch) -> None:
        """Refuse a touch whose channel or topics this catalog does not know.

        Its ``content_id`` may be unknown: external content and portal pages
        are not catalog items, and they still count as touches.
        """
        self.check_terms("channels", [touch.channel], "channel")
        self.check_terms("topics", touch.topics, "topics")

    def item_for(self, action: Action | str) -> ContentItem:
        """The content item behind an action (or action id)."""
        a = Action.parse(action) if isinstance(action, str) else action
        try:
            return self.by_id[a.content_id]
        except KeyError:
            raise CatalogError(
                f"{self.source}: action {a.action_id!r} refers to unknown content "
                f"{a.content_id!r} (catalog {self.version})"
            ) from None

    def eligible_actions(
        self, market: str, day: date, channels: Iterable[str] | None = None
    ) -> tuple[Action, ...]:
        """Actions approved in ``market`` on ``day``, optionally on some channels only."""
        wanted = None if channels is None else set(channels)
        return tuple(
            a
            for a in self.actions
            if (wanted is None or a.channel in wanted)
            and self.by_id[a.content_id].is_approved(market, day)
        )

    # ------------------------------------------------------- vectorized views
    @cached_property
    def action_channel_index(self) -> npt.NDArray[np.int16]:
        """Index into ``channels`` of each action, shape (n_actions,)."""
        pos = {c: i for i, c in enumerate(self.channels)}
        return np.array([pos[a.channel] for a in self.actions], dtype=np.int16)

    @cached_property
    def action_topic_index(self) -> npt.NDArray[np.int16]:
        """Index into ``topics`` of each action's item, shape (n_actions,)."""
        pos = {t: i for i, t in enumerate(self.topics)}
        return np.array([pos[self.by_id[a.content_id].topic] for a in self.actions], dtype=np.int16)

    @cached_property
    def action_item_index(self) -> npt.NDArray[np.int32]:
        """Index into ``items`` of each action, shape (n_actions,)."""
        pos = {it.id: i for i, it in enumerate(self.items)}
        return np.array([pos[a.content_id] for a in self.actions], dtype=np.int32)

    def approval_matrix(self, markets: Sequence[str], day: date) -> npt.NDArray[np.bool_]:
        """Whether each action is approved in each market on ``day``.

        Returns
        -------
        ndarray of bool, shape (len(markets), n_actions)
        """
        out = np.zeros((len(markets), len(self.actions)), dtype=bool)
        for m, market in enumerate(markets):
            for j, a in enumerate(self.actions):
                out[m, j] = self.by_id[a.content_id].is_approved(market, day)
        return out

    # ------------------------------------------------------------- snapshots
    def snapshot_json(self) -> str:
        """The parsed content as canonical JSON (what the version hashes)."""
        return json.dumps(self.raw, sort_keys=True, indent=1)

    def write_snapshot(self, directory: str | Path) -> Path:
        """Store this catalog once under ``directory/<version>.json``; returns the path."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{self.version}.json"
        if not path.exists():
            tmp = d / f".{self.version}.json.tmp"
            tmp.write_text(self.snapshot_json(), encoding="utf-8")
            tmp.replace(path)
        return path

    @classmethod
    def read_snapshot(cls, path: str | Path) -> Catalog:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CatalogError(f"{p}: cannot read catalog snapshot: {exc}") from exc
        cat = cls.from_dict(data, source=str(p))
        if p.stem != cat.version:
            raise CatalogError(
                f"{p}: snapshot content hashes to {cat.version}, not to its name {p.stem}"
            )
        return cat
