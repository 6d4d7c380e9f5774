"""What an HCP profile may hold: vocabularies of its known fields and declared attributes.

A features config is a TOML file (default ``nba/data/hcp_features.toml``)::

    specialties = ["cardiology", "general_practice", ...]
    markets = ["US", "DE", ...]

    [[attributes]]
    name = "rx_volume_decile"       # lower-case identifier, not a known profile field
    type = "numeric"                # categorical | numeric | bool | list
    range = [1, 10]                 # numeric: inclusive bounds
    integer = true                  # numeric: whole numbers only
    featurize = "bucket"            # category | numeric | bucket | none
    buckets = [4, 8]                # with featurize = "bucket": ascending edges
    description = "..."             # optional
    source = "syndicated"           # optional: where the values come from

    [[attributes]]
    name = "stated_channel_preference"
    type = "list"                   # a list of categories
    values_from = "channels"        # or values = [...]; "channels" / "topics" of the catalog
    featurize = "category"

Consents are channels: they are checked against the catalog's channels, not this
file. ``featurize`` declares how the featurizer uses the attribute:
:meth:`HCPFeatures.context_attributes` puts the stored values into the decision
context in the form the featurizer reads (a category or list of categories as is,
a number as a float, a bucketed number as its bucket's name, ``none`` left out).

>>> from nba.catalog import Catalog
>>> cfg = HCPFeatures.default()
>>> cfg.check_attributes({"rx_volume_decile": 9.0}, Catalog.default())
{'rx_volume_decile': 9}
>>> cfg.check_attributes({"rx_decile": 9}, Catalog.default())
Traceback (most recent call last):
...
nba.hcp_features.HCPFeaturesError: attributes: 'rx_decile' is not a declared attribute; ...
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from nba.catalog import Catalog
from nba.domain import HCPProfile, ValidationError, read_toml

DEFAULT_FEATURES = "hcp_features.toml"

ATTRIBUTE_TYPES: tuple[str, ...] = ("categorical", "numeric", "bool", "list")
FEATURIZE: tuple[str, ...] = ("category", "numeric", "bucket", "none")
#: catalog vocabularies an attribute may take its values from
VALUES_FROM: tuple[str, ...] = ("channels", "topics")
#: which ``featurize`` goes with which ``type``
_FEATURIZE_FOR: dict[str, tuple[str, ...]] = {
    "categorical": ("category", "none"),
    "list": ("category", "none"),
    "bool": ("category", "none"),
    "numeric": ("numeric", "bucket", "none"),
}
#: fields of the HCP profile itself (the ``hcps`` schema); no attribute may take their name
KNOWN_FIELDS: tuple[str, ...] = (
    "hcp_id",
    "specialty",
    "decile",
    "market",
    "adoption_stage",
    "consents",
    "no_see",
    "digital_affinity",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOP_KEYS = frozenset({"specialties", "markets", "attributes"})
_ATTR_KEYS = frozenset(
    {
        "name",
        "type",
        "featurize",
        "values",
        "values_from",
        "range",
        "integer",
        "buckets",
        "description",
        "source",
    }
)
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


class HCPFeaturesError(ValidationError):
    """A features config is invalid, or a value breaks it; the message names which."""


def _default_path() -> Path:
    return Path(__file__).resolve().parent / "data" / DEFAULT_FEATURES


def _join(values: tuple[str, ...]) -> str:
    return ", ".join(values)


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One declared HCP attribute.

    Attributes
    ----------
    name : str
    type : {"categorical", "numeric", "bool", "list"}
    featurize : {"category", "numeric", "bucket", "none"}
    values : tuple of str
        Allowed categories (categorical, list) unless ``values_from`` is set.
    values_from : {"channels", "topics"} or None
        Take the allowed categories from the catalog's vocabulary.
    low, high : float or None
        Inclusive range (numeric).
    integer : bool
        Numeric values must be whole numbers.
    buckets : tuple of float
        Ascending bucket edges (numeric with ``featurize="bucket"``).
    description, source : str
    """

    name: str
    type: str
    featurize: str
    values: tuple[str, ...] = ()
    values_from: str | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False
    buckets: tuple[float, ...] = ()
    description: str = ""
    source: str = ""

    def bucket_name(self, value: float) -> str:
        """The name of the bucket ``value`` falls in: ``lt<e0>``, ``<e_i>to<e_i+1>``
        (``e_i <= value < e_i+1``) or ``ge<e_last>`` (edges written with ``:g``).

        >>> AttributeSpec("x", "numeric", "bucket", buckets=(4.0, 8.0)).bucket_name(5)
        '4to8'
        """
        edges = self.buckets
        if value < edges[0]:
            return f"lt{edges[0]:g}"
        for lo, hi in itertools.pairwise(edges):
            if value < hi:
                return f"{lo:g}to{hi:g}"
        return f"ge{edges[-1]:g}"

    def context_value(self, value: Any) -> Any:
        """A stored value as the decision context carries it (see the module docstring);
        None for ``featurize = "none"``."""
        if self.featurize == "none":
            return None
        if self.featurize == "bucket":
            return self.bucket_name(float(value))
        if self.featurize == "numeric":
            return float(value)
        if self.type == "list":
            return sorted({str(v) for v in value})
        return value

    def allowed(self, catalog: Catalog) -> tuple[str, ...]:
        """The categories this attribute accepts (categorical and list types)."""
        if self.values_from is not None:
            vocabulary: tuple[str, ...] = getattr(catalog, self.values_from)
            return vocabulary
        return self.values

    def describe_allowed(self, catalog: Catalog) -> str:
        """What the attribute accepts, in words (for error messages)."""
        if self.type in ("categorical", "list"):
            what = "one of" if self.type == "categorical" else "a list of"
            return f"{what} {_join(self.allowed(catalog))}"
        if self.type == "bool":
            return "true or false"
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} in [{self.low:g}, {self.high:g}]"

    def check(self, value: Any, catalog: Catalog) -> Any:
        """``value`` as stored (a JSON value), or an error naming the attribute, the
        value and what is allowed."""
        bad = HCPFeaturesError(
            f"attribute '{self.name}': {value!r} is not allowed; expected "
            f"{self.describe_allowed(catalog)}"
        )
        if self.type == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.type == "numeric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad
            x = float(value)
            assert self.low is not None and self.high is not None
            if not math.isfinite(x) or not self.low <= x <= self.high:
                raise bad
            if self.integer:
                if x != int(x):
                    raise bad
                return int(x)
            return x
        allowed = self.allowed(catalog)
        if self.type == "categorical":
            if not isinstance(value, str) or value not in allowed:
                raise bad
            return value
        # list of categories
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise bad
        out: list[str] = []
        for v in value:
            if not isinstance(v, str) or v not in allowed:
                raise HCPFeaturesError(
                    f"attribute '{self.name}': {v!r} is not one of {_join(allowed)}"
                )
            if v in out:
                raise HCPFeaturesError(f"attribute '{self.name}': lists {v!r} twice")
            out.append(v)
        return out

    def parse_text(self, text: str) -> Any:
        """A CSV cell as the value it stands for, before :meth:`check` (``None`` when
        empty). Lists are separated by ``;`` or ``|``; bools are true/false/1/0/yes/no."""
        s = text.strip()
        if not s:
            return None
        if self.type == "numeric":
            try:
                return float(s)
            except ValueError:
                raise HCPFeaturesError(f"attribute '{self.name}': {s!r} is not a number") from None
        if self.type == "bool":
            low = s.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise HCPFeaturesError(f"attribute '{self.name}': {s!r} is not true or false")
        if self.type == "list":
            return [x.strip() for x in s.replace("|", ";").split(";") if x.strip()]
        return s


@dataclass(frozen=True)
class HCPFeatures:
    """A validated features config (module docstring).

    Attributes
    ----------
    specialties, markets : tuple of str
        Allowed values of the profile's ``specialty`` and ``market``.
    attributes : tuple of AttributeSpec
        Declared attributes, in file order.
    source : str
        Where it was loaded from.
    """

    specialties: tuple[str, ...]
    markets: tuple[str, ...]
    attributes: tuple[AttributeSpec, ...] = ()
    source: str = "<memory>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> HCPFeatures:
        """Load and validate a features config file."""
        p = Path(path)
        data = read_toml(p, HCPFeaturesError, "features config")
        return cls.from_dict(data, source=str(p))

    @classmethod
    def default(cls) -> HCPFeatures:
        """The packaged ``nba/data/hcp_features.toml``."""
        return cls.load(_default_path())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<memory>") -> HCPFeatures:
        """Validate a parsed config; errors name the file, the attribute and the key."""

        def err(where: str, problem: str) -> HCPFeaturesError:
            return HCPFeaturesError(f"{source}: {where}: {problem}")

        def str_list(value: Any, where: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not value:
                raise err(where, "must be a non-empty list of strings")
            if not all(isinstance(v, str) and v.strip() == v and v for v in value):
                raise err(where, "entries must be non-empty strings without spaces around")
            if len(set(value)) != len(value):
                dup = next(v for v in value if value.count(v) > 1)
                raise err(where, f"lists {dup!r} twice")
            return tuple(value)

        extra = sorted(set(data) - _TOP_KEYS)
        if extra:
            raise err(extra[0], f"unknown key; expected {', '.join(sorted(_TOP_KEYS))}")
        specialties = str_list(data.get("specialties"), "specialties")
        markets = str_list(data.get("markets"), "markets")
        raw_attrs = data.get("attributes", [])
        if not isinstance(raw_attrs, list):
            raise err("attributes", "must be an array of tables ([[attributes]])")
        specs: list[AttributeSpec] = []
        for i, a in enumerate(raw_attrs):
            if not isinstance(a, Mapping):
                raise err(f"attributes[{i}]", "must be a table")
            name = a.get("name")
            where = f"attribute '{name}'" if isinstance(name, str) else f"attributes[{i}]"
            if not isinstance(name, str) or not _NAME.match(name):
                raise err(where, "name must be a lower-case identifier (a-z, 0-9, _)")
            if name in KNOWN_FIELDS:
                raise err(where, "name is a field of the profile itself")
            if any(s.name == name for s in specs):
                raise err(where, "declared twice")
            unknown = sorted(set(a) - _ATTR_KEYS)
            if unknown:
                raise err(
                    where, f"unknown key {unknown[0]!r}; expected {', '.join(sorted(_ATTR_KEYS))}"
                )
            typ = a.get("type")
            if typ not in ATTRIBUTE_TYPES:
                raise err(where, f"type {typ!r} is not one of {_join(ATTRIBUTE_TYPES)}")
            feat = a.get("featurize")
            if feat not in _FEATURIZE_FOR[typ]:
                raise err(
                    where,
                    f"featurize {feat!r} does not fit type {typ!r}; "
                    f"expected one of {_join(_FEATURIZE_FOR[typ])}",
                )
            values: tuple[str, ...] = ()
            values_from = a.get("values_from")
            low = high = None
            integer = False
            buckets: tuple[float, ...] = ()
            if typ in ("categorical", "list"):
                if ("values" in a) == (values_from is not None):
                    raise err(where, "give exactly one of 'values' and 'values_from'")
                if values_from is not None and values_from not in VALUES_FROM:
                    raise err(
                        where, f"values_from {values_from!r} is not one of {_join(VALUES_FROM)}"
                    )
                if "values" in a:
                    values = str_list(a["values"], f"{where}: values")
            elif "values" in a or values_from is not None:
                raise err(where, f"a {typ} attribute takes no 'values'")
            if typ == "numeric":
                rng = a.get("range")
                if (
                    not isinstance(rng, list)
                    or len(rng) != 2
                    or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in rng)
                    or not all(math.isfinite(x) for x in rng)
                    or not rng[0] < rng[1]
                ):
                    raise err(where, "range must be [low, high] with finite low < high")
                low, high = float(rng[0]), float(rng[1])
                integer = a.get("integer", False)
                if not isinstance(integer, bool):
                    raise err(where, "integer must be true or false")
                if feat == "bucket":
                    edges = a.get("buckets")
                    if (
                        not isinstance(edges, list)
                        or not edges
                        or not all(
                            isinstance(x, int | float) and not isinstance(x, bool) for x in edges
                        )
                        or any(not low < x <= high for x in edges)
                        or any(x >= y for x, y in itertools.pairwise(edges))
                    ):
                        raise err(
                            where,
                            f"buckets must be ascending edges inside ({low:g}, {high:g}]",
                        )
                    buckets = tuple(float(x) for x in edges)
                elif "buckets" in a:
                    raise err(where, "buckets are only for featurize = 'bucket'")
            else:
                for key in ("range", "integer", "buckets"):
                    if key in a:
                        raise err(where, f"a {typ} attribute takes no '{key}'")
            for key in ("description", "source"):
                if not isinstance(a.get(key, ""), str):
                    raise err(where, f"{key} must be a string")
            specs.append(
                AttributeSpec(
                    name=name,
                    type=typ,
                    featurize=feat,
                    values=values,
                    values_from=values_from,
                    low=low,
                    high=high,
                    integer=integer,
                    buckets=buckets,
                    description=a.get("description", ""),
                    source=a.get("source", ""),
                )
            )
        return cls(specialties, markets, tuple(specs), source=source, raw=dict(data))

    # --------------------------------------------------------------- checking
    @cached_property
    def by_name(self) -> dict[str, AttributeSpec]:
        return {s.name: s for s in self.attributes}

    def check_profile(self, hcp: HCPProfile, catalog: Catalog) -> None:
        """Refuse a profile whose specialty, market or consents are outside the
        vocabularies (this config's specialties and markets, the catalog's channels).

        Raises
        ------
        HCPFeaturesError
            ``"<field>: <value> is not one of <allowed>"``.
        """
        if hcp.specialty not in self.specialties:
            raise HCPFeaturesError(
                f"specialty: {hcp.specialty!r} is not one of {_join(self.specialties)}"
            )
        if hcp.market not in self.markets:
            raise HCPFeaturesError(f"market: {hcp.market!r} is not one of {_join(self.markets)}")
        for ch in sorted(hcp.consents):
            if ch not in catalog.channels:
                raise HCPFeaturesError(
                    f"consents: {ch!r} is not one of the catalog's channels: "
                    f"{_join(catalog.channels)}"
                )

    def context_attributes(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The stored attributes of one HCP as its decision context carries them:
        declared ones whose rule is not ``none``, by :meth:`AttributeSpec.context_value`
        (an attribute this config no longer declares is left out, as is an empty list).

        >>> HCPFeatures.default().context_attributes(
        ...     {"rx_volume_decile": 9, "payer_mix_commercial": 0.4, "gone": 1})
        {'payer_mix_commercial': 0.4, 'rx_volume_decile': 'ge8'}
        """
        out: dict[str, Any] = {}
        for name, value in stored.items():
            spec = self.by_name.get(name)
            if spec is None or value is None:
                continue
            v = spec.context_value(value)
            if v is not None and v != []:
                out[name] = v
        return dict(sorted(out.items()))

    def check_attributes(self, values: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
        """Declared attributes as stored: each value checked by its declaration, nulls
        left out (an unknown value is no value).

        Raises
        ------
        HCPFeaturesError
            An undeclared name (named, with the declared ones) or a bad value (the
            attribute, the value and what is allowed).
        """
        out: dict[str, Any] = {}
        for name, value in values.items():
            spec = self.by_name.get(name)
            if spec is None:
                declared = _join(tuple(self.by_name)) or "none"
                raise HCPFeaturesError(
                    f"attributes: {name!r} is not a declared attribute; declared: {declared} "
                    f"(features config {self.source})"
                )
            if value is None:
                continue
            out[name] = spec.check(value, catalog)
        return out
