# One image for every process of the service: web, worker, control, beat, flower, app.
# The compose file picks the process with `command:` (the same lines as the Procfile).
#
# PYTHON_IMAGE: any Debian-like image with Python 3.11+ and its venv module. The official
# python:3.11-slim by default; the container test builds one from Debian's packages instead
# (scripts/containers.py), where no image registry can be reached.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

# The unprivileged user every process of the image runs as.
ARG APP_USER=loadtest

# The packages live in a virtualenv: Debian's own Python refuses `pip install` beside its
# packages, and the official image does not mind.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app
RUN useradd --create-home --uid 1000 "$APP_USER" && python3 -m venv "$VIRTUAL_ENV"

COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays root's: the service reads it and cannot change it. It writes only to its data
# folder and to the static files (`manage.py prepare` collects them again at every start), and
# both belong to it.
COPY . .
RUN mkdir -p "$DATA_DIR" "$STATIC_ROOT" && chown -R "$APP_USER" "$DATA_DIR" "$STATIC_ROOT"

USER $APP_USER
# Static files are baked into the image by the user that collects them again at start. The
# build needs a throwaway key and data folder: nothing of the build may land in the data volume.
RUN build_data="$(mktemp -d)" \
    && SECRET_KEY=build-only DATA_DIR="$build_data" python manage.py collectstatic --noinput \
    && rm -rf "$build_data"

EXPOSE 8000 5555 5000
CMD ["python", "-m", "uvicorn", "loadtest_project.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "off"]
