"""The floor for ``bench/ingest.py``: the receiver's route doing nothing but reading the body.

Served by gunicorn with the receiver's own configuration, so the ratio between the
two measures what verify → record → enqueue costs, not the server around it.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.post("/webhooks/salla")
def salla() -> Response:
    request.get_data(cache=False)
    return jsonify(status="ok")
