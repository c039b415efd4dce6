# The hub's image: every process (feed, fanout, recorder, migrations) is `hub <command>`.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole build context (.dockerignore keeps out the venv, services' data, caches, tests and
# build artefacts): pyproject.toml finds the packages, so a new room needs no edit here.
COPY . .
# The live page's chart library from npm (package-lock.json) into fanout/web/vendor/
RUN scripts/install.sh --web && rm -rf node_modules
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
ENV HUB_FEED__METRICS_HOST=0.0.0.0 HUB_RECORDER__METRICS_HOST=0.0.0.0 HUB_FANOUT__HOST=0.0.0.0
USER nobody
ENTRYPOINT ["hub"]
