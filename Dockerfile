# dptune: the REST API and workers. One image; the command picks the role:
#   dptune serve --host 0.0.0.0 [--no-worker]  |  dptune worker  |  dptune migrate
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    DPTUNE_DATA_DIR=/data

# libgomp: OpenMP for scikit-learn and TensorFlow; libxrender/libxext: RDKit's shared libraries.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libxrender1 libxext6 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The pinned stack first (pyproject.toml's dependencies), in its own layer: it changes rarely and is large.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY alembic.ini ./
COPY migrations ./migrations
COPY workers ./workers
COPY app ./app
# Editable, so migrations/ stays next to app/ where app.db looks for it.
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 --user-group dptune \
    && mkdir -p /data \
    && chown dptune:dptune /data \
    && chmod 700 /data

USER dptune
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)" || exit 1

CMD ["dptune", "serve", "--host", "0.0.0.0", "--port", "8000"]
