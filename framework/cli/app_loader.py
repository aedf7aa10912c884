"""Finding the user's application for the management commands (``--app``), and
pointing it at the store ``--url`` names."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable

from framework.application.app import Application
from framework.application.settings import (
    STORE_URL_ENV,
    describe_url,
    existing_stores_only,
    same_store,
)
from framework.errors import ConfigurationError

#: Read when ``--app`` is not given.
APP_ENV = "FRAMEWORK_APP"


def load_app(spec: str | None, url: str | None = None) -> Application:
    """Import ``module:attribute`` and return the ``Application`` it names: an
    instance, or a factory (a callable returning one).

    The application is opened with ``existing_stores_only``: a store URL that
    names no store is an error, never a new store. Given ``url`` (``--url``),
    ``FRAMEWORK_STORE_URL`` is set to it before the module is imported (so an
    ``Application()`` built without a URL opens it), and a factory with a
    ``url`` parameter is called with it; an application that opened another
    store is an error naming both, since ``--url`` would be silently ignored.
    """
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
    if url is not None:
        os.environ[STORE_URL_ENV] = url
    with existing_stores_only():
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
        if isinstance(found, Application):
            app: object = found
        elif callable(found):
            app = found(url=url) if url is not None and _takes_url(found) else found()
        else:
            raise ConfigurationError(
                f"--app {spec!r} names a {type(found).__qualname__}, not an "
                "Application or a function that returns one"
            )
    if not isinstance(app, Application):
        raise ConfigurationError(
            f"--app {spec!r} gave {type(app).__qualname__}, not an Application"
        )
    if url is not None:
        _check_url(app, spec, url)
    return app


def _takes_url(factory: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature
        return False
    return "url" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _check_url(app: Application, spec: str, url: str) -> None:
    if app.url is not None and same_store(app.url, url):
        return
    opened = (
        "a store it was given (log= or store=)"
        if app.url is None
        else describe_url(app.url)
    )
    app.close()
    raise ConfigurationError(
        f"--app {spec} opened {opened}, not --url {describe_url(url)}, which "
        f"would be ignored: build the application without a URL (it then reads "
        f"{STORE_URL_ENV}, which --url sets), or make {spec} a function that "
        "takes a url argument"
    )
