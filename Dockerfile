# One image for every process of the service: web, worker, control, beat, flower, app.
# The compose file picks the process with `command:` (the same lines as the Procfile).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app
RUN useradd --create-home --uid 1000 loadtest && mkdir -p /data && chown loadtest /data

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=loadtest . .
# Static files are baked into the image; the build needs a throwaway key and data folder.
RUN SECRET_KEY=build-only DATA_DIR=/tmp/build python manage.py collectstatic --noinput \
    && rm -rf /tmp/build

USER loadtest
EXPOSE 8000 5555 5000
CMD ["python", "-m", "uvicorn", "loadtest_project.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "off"]
