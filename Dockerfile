# One image for every step of the tritonops WorkflowTemplate. Entry point: `tritonops`.
# Build here: `make image` (scripts/build-image.sh: podman, tagged localhost/tritonops:dev; it builds a
# stand-in for the base image when no registry is reachable). For a cluster, build it with any OCI
# builder (`podman build -t <registry>/tritonops:<tag> .`) and set that name under `images:` in
# your kustomize overlay.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/tritonops
WORKDIR /src
# Every transitive dependency at the version CI tested (requirements/constraints.txt), each file
# checked against the sha256 locked for it (image/requirements.lock, `make image-lock`).
COPY image/requirements.lock ./
RUN /opt/tritonops/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/tritonops/bin/pip install --no-deps . \
 && /opt/tritonops/bin/pip uninstall -y pip setuptools \
 && /opt/tritonops/bin/python -m compileall -q /opt/tritonops   # the root filesystem is read-only at run time

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 tritonops \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin tritonops
COPY --from=build /opt/tritonops /opt/tritonops
ENV PATH=/opt/tritonops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
ENTRYPOINT ["tritonops"]
CMD ["--help"]
