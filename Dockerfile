FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RELAY_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY web web
COPY worker worker
RUN pip install --no-cache-dir -c constraints.txt '.[ops]' && useradd --system relay && mkdir /data && chown relay /data
USER relay
EXPOSE 8000
CMD ["gunicorn", "-c", "python:web.gunicorn_conf", "web:create_app()"]
