"""Liveness and readiness, for load balancers and orchestrators: no auth."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from app.errors import problem
from app.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        response = problem(503, "The database is not reachable.")
        response.headers["Retry-After"] = "5"
        return response
    finally:
        db.session.remove()
    return {"status": "ready", "database": "ok"}
