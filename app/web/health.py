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
    """Liveness.

    ---
    tags: [health]
    operationId: healthz
    description: The process is up. Touches nothing else.
    security: []
    responses:
      '200':
        description: Up.
        content:
          application/json:
            schema:
              type: object
              required: [status]
              properties:
                status:
                  type: string
                  enum: [ok]
    """
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness.

    ---
    tags: [health]
    operationId: readyz
    description: The database answers a trivial query.
    security: []
    responses:
      '200':
        description: Ready.
        content:
          application/json:
            schema:
              type: object
              required: [status, database]
              properties:
                status:
                  type: string
                  enum: [ready]
                database:
                  type: string
                  enum: [ok]
      '503':
        description: The database is not reachable.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
    """
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
