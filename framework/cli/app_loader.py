"""Finding the user's application for the management commands (``--app``)."""

from __future__ import annotations

import importlib
import os
import sys

from framework.application.app import Application
from framework.errors import ConfigurationError

#: Read when ``--app`` is not given.
APP_ENV = "FRAMEWORK_APP"


def load_app(spec: str | None) -> Application:
    """Import ``module:attribute`` and return the ``Application`` it names (an
    instance, or a callable without arguments that returns one)."""
    spec = spec or os.environ.get(APP_ENV)
    if not spec:
        raise ConfigurationError(
            f"no application: pass --app package.module:app or set {APP_ENV}"
        )
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"--app {spec!r} must look like package.module:attribute"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        # Like `python -m`, find modules of the project the command runs in.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} for --app: {exc}"
        ) from exc
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(
            f"{module_name!r} has no attribute {attribute!r} for --app"
        ) from None
    app = found if isinstance(found, Application) else found()
    if not isinstance(app, Application):
        raise ConfigurationError(
            f"--app {spec!r} gave {type(app).__qualname__}, not an Application"
        )
    return app
