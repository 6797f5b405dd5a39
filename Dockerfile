# Keyline as installed software: the steps of tests/test_installed_wheel.py.
#
# Stage 1 builds the wheel with Node.js at hand: setup.py copies the portal's front-end files
# (the ones portal/vendor.py serves at /vendor/*) from node_modules into the package.
# Stage 2 installs that wheel with its pinned dependencies; no source tree, no Node.js.
FROM python:3.11-slim AS build
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

FROM python:3.11-slim
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
# The example inventory as plain files, for docker-compose.yml's KEYLINE_INVENTORY.
COPY config/example /app/config/example
WORKDIR /app
USER keyline
EXPOSE 8080
CMD ["keyline", "serve"]
