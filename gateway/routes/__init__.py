"""REST blueprints, one per area: every module here defines `bp`, and the app registers them all."""

from __future__ import annotations

import importlib
import pkgutil

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    """The `bp` of every module in this package, in name order."""
    return [importlib.import_module(f"{__name__}.{module.name}").bp
            for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)]
