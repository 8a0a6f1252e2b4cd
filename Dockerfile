# The service image: locked dependencies first (a layer that changes only with the lock), then
# the code. `docker compose` (compose.yaml) runs it as web, worker and a one-off migrate step.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PRODUCTION=true \
    INSTANCE_PATH=/var/lib/consent-center/instance \
    AUDIT_SIGNING_KEY_PATH=/var/lib/consent-center/keys/audit-signing-key.json
WORKDIR /srv/consent-center

COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md gunicorn.conf.py ./
COPY app ./app
COPY templates ./templates
COPY static ./static
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/consent-center consent \
    && mkdir -p /var/lib/consent-center/instance /var/lib/consent-center/keys \
    && chown -R consent /var/lib/consent-center

USER consent
# The signing key (keys/) and any instance files: back this volume up (docs/deployment.md).
VOLUME ["/var/lib/consent-center"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Migrations are a one-off step (`consent-center db upgrade`, compose's `migrate`), never run
# by every start; gunicorn sizes its workers from the container's CPU quota (gunicorn.conf.py).
CMD ["gunicorn", "app:create_app()"]
