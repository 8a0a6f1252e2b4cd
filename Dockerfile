FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    INSTANCE_PATH=/var/lib/consent-center
WORKDIR /srv/consent-center

COPY pyproject.toml README.md gunicorn.conf.py ./
COPY app ./app
COPY templates ./templates
COPY static ./static
RUN pip install . && useradd --system --home-dir /var/lib/consent-center consent \
    && mkdir -p /var/lib/consent-center && chown consent /var/lib/consent-center

USER consent
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Migrations run once per deploy (`consent-center db upgrade`), not in every worker.
CMD ["sh", "-c", "consent-center db upgrade && exec gunicorn 'app:create_app()'"]
