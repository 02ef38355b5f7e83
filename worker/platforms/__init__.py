"""The platform registry: a platform's name → the object implementing ``Platform``."""

from __future__ import annotations

import importlib
from typing import Any

from worker.config import Settings
from worker.platforms.base import Platform

# Receiver name → "module:class". A platform is a folder; adding one is one line here.
REGISTRY = {
    "salla": "worker.platforms.salla:SallaPlatform",
    "zid": "worker.platforms.zid:ZidPlatform",
    "shopify": "worker.platforms.shopify:ShopifyPlatform",
    "appstle": "worker.platforms.appstle:AppstlePlatform",
}
PLATFORM_NAMES = tuple(REGISTRY)


class UnknownPlatform(KeyError):
    def __str__(self) -> str:
        return f"unknown platform {self.args[0]!r} (known: {', '.join(PLATFORM_NAMES)})"


def build_platform(name: str, settings: Settings) -> Platform:
    if name not in REGISTRY:
        raise UnknownPlatform(name)
    module, _, attribute = REGISTRY[name].partition(":")
    platform: Platform = getattr(importlib.import_module(module), attribute)(settings)
    return platform


def samples_module(name: str) -> Any:
    """The platform's ``samples`` module: ``EVENT_NAMES`` and ``build(...)``."""
    if name not in REGISTRY:
        raise UnknownPlatform(name)
    package = REGISTRY[name].partition(":")[0]
    return importlib.import_module(f"{package}.samples")


def build_platforms(settings: Settings) -> dict[str, Platform]:
    return {name: build_platform(name, settings) for name in PLATFORM_NAMES}


# What a worker loads on its first points read (the receiver never does).
API_MODULES = (
    "worker.platforms.salla.client",
    "worker.platforms.zid.client",
    "worker.platforms.shopify.client",
)


def warm() -> None:
    """Import every platform and its API client in the worker's main process, before
    it forks its pool (``worker.celery_app``): each pool process then starts with them
    loaded (shared, copy-on-write) instead of importing its own at its first event and
    its first fetch. The web process never calls this: it reads no points."""
    for spec in (*REGISTRY.values(), *API_MODULES):
        importlib.import_module(spec.partition(":")[0])
