"""The platform registry: a platform's name → the object implementing ``Platform``."""

from __future__ import annotations

from worker.config import Settings
from worker.platforms.base import Platform


class UnknownPlatform(KeyError):
    def __str__(self) -> str:
        return f"unknown platform {self.args[0]!r} (known: {', '.join(PLATFORM_NAMES)})"


PLATFORM_NAMES = ("salla",)


def build_platform(name: str, settings: Settings) -> Platform:
    if name == "salla":
        from worker.platforms.salla import SallaPlatform

        return SallaPlatform(settings)
    raise UnknownPlatform(name)


def build_platforms(settings: Settings) -> dict[str, Platform]:
    return {name: build_platform(name, settings) for name in PLATFORM_NAMES}
