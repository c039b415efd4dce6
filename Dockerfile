# The hub's image: every process (feed, fanout, recorder, migrations) is `hub <command>`.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY orderbook_core orderbook_core
COPY hub hub
COPY bus bus
COPY feedhandler feedhandler
COPY trading trading
COPY fanout fanout
COPY recorder recorder
COPY client client
COPY app app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
ENV HUB_FEED__METRICS_HOST=0.0.0.0 HUB_RECORDER__METRICS_HOST=0.0.0.0 HUB_FANOUT__HOST=0.0.0.0
USER nobody
ENTRYPOINT ["hub"]
