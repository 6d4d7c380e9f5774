"""Featurizer settings and the name and number formats both paths share.

:class:`FeaturizerConfig` says which namespaces are written and which pairs VW
crosses; :func:`clean` and :func:`fixed3` are the one definition of how a name
and a number are written, used by the per-decision path
(:mod:`nba.features.tokens`), the bulk Arrow path (:mod:`nba.features.bulk`)
and DSJSON (:mod:`nba.features.dsjson`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nba.domain import ValidationError

FEATURIZER_VERSION = 1

#: shared (context) namespaces, in line order
SHARED_NAMESPACES: tuple[str, ...] = ("p", "h", "r", "c")
#: action namespaces, in line order
ACTION_NAMESPACES: tuple[str, ...] = ("T", "K", "F", "I", "x")
NAMESPACE_DOC: Mapping[str, str] = {
    "p": "HCP profile",
    "h": "recent history",
    "r": "request",
    "c": "calendar",
    "T": "topic",
    "K": "channel",
    "F": "format",
    "I": "content id",
    "x": "action x context crosses",
}
#: characters a VW feature name may not contain (written as ``_``)
CLEAN_PATTERN = r"[ \t\r\n\x0b\x0c:|]"
_CLEAN = re.compile(CLEAN_PATTERN)


class FeaturizeError(ValidationError):
    """A context, action or table could not be featurized; names what and where."""


# the public name of the error, as before the module became a package
FeaturizeError.__module__ = "nba.features"


def clean(name: str) -> str:
    """A feature-name-safe version of ``name`` (whitespace, ``:`` and ``|`` -> ``_``).

    >>> clean("internal medicine|x:y")
    'internal_medicine_x_y'
    """
    out = _CLEANED.get(name)
    if out is None:
        out = _CLEAN.sub("_", name)
        if len(_CLEANED) < _CLEANED_MAX:  # names are few (catalog, profiles); stay bounded
            _CLEANED[name] = out
    return out


#: :func:`clean`'s answers by name (a pure function of its argument), so that the
#: names every decision writes (channels, topics, specialties, markets) are not
#: run through the pattern each time
_CLEANED: dict[str, str] = {}
_CLEANED_MAX = 16384


def fixed3(x: float) -> str:
    """``x`` rounded half-to-even to three decimals, written without exponent.

    >>> fixed3(0.65), fixed3(-1.5), fixed3(2.0004)
    ('0.650', '-1.500', '2.000')
    """
    m = round(float(x) * 1000.0)
    sign = "-" if m < 0 else ""
    m = abs(int(m))
    return f"{sign}{m // 1000}.{m % 1000:03d}"


#: upper bounds (days, inclusive) and names of the age buckets of "days since"
#: features; older than the last bound is :data:`AGE_BUCKET_OLDER`
AGE_BUCKETS: tuple[tuple[int, str], ...] = (
    (0, "0d"),
    (1, "1d"),
    (3, "3d"),
    (7, "1w"),
    (14, "2w"),
    (30, "1m"),
    (90, "3m"),
)
AGE_BUCKET_OLDER = "old"


def age_bucket(days: int) -> str:
    """The bucket name of an age in whole days (see :data:`AGE_BUCKETS`).

    >>> [age_bucket(d) for d in (0, 1, 2, 7, 8, 90, 91)]
    ['0d', '1d', '3d', '1w', '2w', '3m', 'old']
    """
    for upper, name in AGE_BUCKETS:
        if days <= upper:
            return name
    return AGE_BUCKET_OLDER


@dataclass(frozen=True)
class FeaturizerConfig:
    """Which namespaces are written and which pairs VW crosses (``-q``).

    Parameters
    ----------
    namespaces : tuple of str
        Enabled namespaces (letters of :data:`SHARED_NAMESPACES` and
        :data:`ACTION_NAMESPACES`). Disabled ones are left out of the lines.
    interactions : tuple of str
        Two-letter namespace pairs handed to VW as ``-q``; each letter must be
        an enabled namespace.

    >>> FeaturizerConfig().content_hash == FeaturizerConfig().content_hash
    True
    >>> FeaturizerConfig(interactions=("pZ",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nba.features.FeaturizeError: FeaturizerConfig: field 'interactions': 'pZ' names ...
    """

    namespaces: tuple[str, ...] = SHARED_NAMESPACES + ACTION_NAMESPACES
    interactions: tuple[str, ...] = ("pT", "pK", "pF", "hT", "hK", "cK", "rK")
    version: int = FEATURIZER_VERSION
    _hash: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def err(fieldname: str, problem: str) -> FeaturizeError:
            return FeaturizeError(f"FeaturizerConfig: field '{fieldname}': {problem}")

        object.__setattr__(self, "namespaces", tuple(self.namespaces))
        object.__setattr__(self, "interactions", tuple(self.interactions))
        known = SHARED_NAMESPACES + ACTION_NAMESPACES
        for ns in self.namespaces:
            if ns not in known:
                raise err("namespaces", f"unknown namespace {ns!r} (known: {', '.join(known)})")
        if len(set(self.namespaces)) != len(self.namespaces):
            raise err("namespaces", "lists a namespace twice")
        if not any(ns in ACTION_NAMESPACES for ns in self.namespaces):
            raise err("namespaces", "needs at least one action namespace")
        enabled = [ns for ns in known if ns in self.namespaces]
        object.__setattr__(self, "namespaces", tuple(enabled))
        for pair in self.interactions:
            if not isinstance(pair, str) or len(pair) != 2:
                raise err("interactions", f"{pair!r} is not a pair of namespace letters")
            for letter in pair:
                if letter not in enabled:
                    raise err(
                        "interactions",
                        f"{pair!r} names namespace {letter!r}, which is not enabled "
                        f"(enabled: {', '.join(enabled)})",
                    )
        if len(set(self.interactions)) != len(self.interactions):
            raise err("interactions", "lists a pair twice")
        if self.version != FEATURIZER_VERSION:
            raise err("version", f"{self.version} is not supported ({FEATURIZER_VERSION} is)")
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "_hash", hashlib.sha256(blob.encode()).hexdigest()[:16])

    @property
    def content_hash(self) -> str:
        """First 16 hex digits of the SHA-256 of :meth:`to_dict` as canonical JSON."""
        return self._hash

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "namespaces": list(self.namespaces),
            "interactions": list(self.interactions),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeaturizerConfig:
        unknown = sorted(set(d) - {"version", "namespaces", "interactions"})
        if unknown:
            raise FeaturizeError(f"FeaturizerConfig: field '{unknown[0]}': unknown field")
        return cls(
            namespaces=tuple(d.get("namespaces", SHARED_NAMESPACES + ACTION_NAMESPACES)),
            interactions=tuple(d.get("interactions", cls.interactions)),
            version=int(d.get("version", FEATURIZER_VERSION)),
        )

    @property
    def shared(self) -> tuple[str, ...]:
        return tuple(ns for ns in self.namespaces if ns in SHARED_NAMESPACES)

    @property
    def action(self) -> tuple[str, ...]:
        return tuple(ns for ns in self.namespaces if ns in ACTION_NAMESPACES)
