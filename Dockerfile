# Gatehouse: two stages, so the runtime image carries the virtualenv but no build tools.
FROM python:3.11-slim AS build
RUN python -m venv /opt/venv
# Runtime packages only: the test tools in requirements.txt (pytest, schemathesis, playwright) stay out.
COPY requirements-runtime.txt /tmp/requirements-runtime.txt
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements-runtime.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    DATABASE_URL=sqlite+aiosqlite:////data/gatehouse.db \
    SECRET_KEY_FILE=/data/gatehouse.secret
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gatehouse \
    && mkdir -p /app /data && chown gatehouse:gatehouse /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY service.py cli.py ./
USER gatehouse
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
# Production by default: it refuses to start without SECRET_KEY. --no-proxy-headers: uvicorn would otherwise
# take the client address from X-Forwarded-For (it trusts 127.0.0.1 by default); Gatehouse's TRUSTED_PROXIES
# is the one rule for that. Gatehouse logs each request itself and silences uvicorn's access log.
CMD ["uvicorn", "service:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
