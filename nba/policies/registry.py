"""Policies by name. Each policy module registers its class with :func:`register`;
:func:`available` imports the known modules so the conformance suite finds every
policy automatically.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from nba.policies.base import Policy, PolicyError

#: modules that define policies in the ``nba`` library (not the simulator's oracle)
POLICY_MODULES: tuple[str, ...] = ("nba.policies.baselines", "nba.policies.vw")

_REGISTRY: dict[str, type[Policy]] = {}

P = TypeVar("P", bound=type[Policy])


def register(cls: P) -> P:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise PolicyError(f"policy name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_modules() -> None:
    for mod in POLICY_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def available() -> dict[str, type[Policy]]:
    """Every registered policy class by name."""
    _load_modules()
    return dict(sorted(_REGISTRY.items()))


def create(name: str, **kwargs: Any) -> Policy:
    """Instantiate a registered policy by name."""
    classes = available()
    if name not in classes:
        raise PolicyError(f"unknown policy {name!r}; available: {', '.join(classes)}")
    factory: Callable[..., Policy] = classes[name]
    return factory(**kwargs)
