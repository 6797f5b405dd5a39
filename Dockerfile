FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY keyline keyline
COPY config config
COPY store store
COPY collectors collectors
COPY topology topology
COPY alarms alarms
COPY sla sla
COPY portal portal
COPY lab lab
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/keyline keyline \
    && mkdir -p /var/lib/keyline && chown keyline /var/lib/keyline
USER keyline
EXPOSE 8080
CMD ["keyline", "serve"]
