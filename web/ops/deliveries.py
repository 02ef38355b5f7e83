"""Deliveries pages (the query layer is worker.ops.deliveries)."""

from __future__ import annotations

from flask import Blueprint, render_template

from worker.runtime import Runtime


def register(blueprint: Blueprint, runtime: Runtime) -> None:
    @blueprint.get("/deliveries", endpoint="deliveries")
    def listing() -> str:
        return render_template("ops/error.html", status=200, message="not yet")
