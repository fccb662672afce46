# syntax=docker/dockerfile:1
# Multi-stage build: wheels in a builder, a slim non-root runtime.
FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Runtime pins only: test, lint and benchmark tools live in requirements-dev.txt.
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels -r requirements.txt

FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=adiuva.settings.production PORT=8000
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system adiuva && useradd --system --gid adiuva --home /app adiuva
WORKDIR /app
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/* && rm -rf /wheels
COPY --chown=adiuva:adiuva . .
RUN DJANGO_SECRET_KEY=build DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    FERNET_MASTER_KEYS=ZGphbmdvLWNvbGxlY3RzdGF0aWMtYnVpbGQtb25seS0= DJANGO_ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput
USER adiuva
EXPOSE 8000
# uvicorn streams request bodies (daphne buffers them in memory), which backups need. `exec`: SIGTERM
# reaches uvicorn itself (PID 1), which drains the device sockets (README, Deploying).
CMD ["sh", "-c", "exec uvicorn adiuva.asgi:application --host 0.0.0.0 --port ${PORT} --workers ${WEB_CONCURRENCY:-2} --ws websockets-sansio --ws-max-size ${DEVICE_WS_MAX_SIZE:-2097152} --ws-max-queue ${DEVICE_WS_MAX_QUEUE:-8} --ws-per-message-deflate ${DEVICE_WS_PER_MESSAGE_DEFLATE:-true} --ws-ping-interval 0 --timeout-graceful-shutdown 5 --no-server-header --no-access-log --forwarded-allow-ips=${FORWARDED_ALLOW_IPS:-}"]
