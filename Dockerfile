# syntax=docker/dockerfile:1
# Build: docker build -t powerstrip .   Run: docker run -p 8000:8000 -e POWERSTRIP_SECRET_KEY=... powerstrip

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the hashed lock, so this layer is cached until the lock changes.
COPY requirements/main.txt requirements/main.txt
RUN pip install --require-hashes --no-deps -r requirements/main.txt
COPY pyproject.toml README.md ./
COPY app app
COPY plugins plugins
COPY powerstrip powerstrip
RUN pip install --no-deps . && pip check

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    POWERSTRIP_ENVIRONMENT=production \
    POWERSTRIP_INSTANCE_PATH=/srv/instance \
    GUNICORN_BIND=0.0.0.0:8000
RUN groupadd --system --gid 10001 powerstrip \
    && useradd --system --uid 10001 --gid powerstrip --home-dir /srv --shell /usr/sbin/nologin powerstrip \
    && mkdir -p /srv/instance \
    && chown powerstrip:powerstrip /srv/instance
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY wsgi.py gunicorn.conf.py ./
USER powerstrip:powerstrip
# 8000: the API; 9464: Prometheus metrics, served by the gunicorn master on 127.0.0.1 unless
# POWERSTRIP_METRICS_HOST says otherwise (compose.yaml: 0.0.0.0 on its own network only).
EXPOSE 8000 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health/live', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
