# Keyline as installed software: the steps of tests/test_installed_wheel.py, which builds the
# wheel from exactly the files stage 1 copies (tests/test_docker_layout.py reads them here).
#
# Stage 1 builds the wheel with Node.js at hand: setup.py copies the portal's front-end files
# (the ones portal/vendor.py serves at /vendor/*) from node_modules into the package.
# Stage 2 installs that wheel with its pinned dependencies; no source tree, no Node.js.
# Debian bookworm, as the machines lab/debian-packages.txt is written for.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY pyproject.toml setup.py README.md ./
COPY keyline keyline
COPY config config
COPY store store
COPY collectors collectors
COPY topology topology
COPY alarms alarms
COPY sla sla
COPY portal portal
COPY lab lab
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim-bookworm
# The SLA report's PDF (sla/render.py): WeasyPrint's Pango and fonts, a CJK one for Chinese
# names (the same names as in lab/debian-packages.txt).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
       libharfbuzz-subset0 fontconfig fonts-dejavu-core fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/keyline-*.whl && rm -r /tmp/dist \
    && useradd --system --home /var/lib/keyline keyline \
    && mkdir -p /var/lib/keyline && chown keyline /var/lib/keyline
# The example inventory as plain files, where docker-compose.yml's services read an inventory
# (its KEYLINE_INVENTORY_DIR is mounted over it).
COPY config/example /etc/keyline/inventory
WORKDIR /app
USER keyline
EXPOSE 8080
CMD ["keyline", "serve"]
