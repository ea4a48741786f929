# syntax=docker/dockerfile:1
# o4o-operator and o4o-dashboard, one image:
#   operator:  docker run IMAGE                      (o4o-operator run --all-namespaces)
#   dashboard: docker run --entrypoint o4o-dashboard IMAGE --all-namespaces ...
# manifests/operator and manifests/dashboard run it as UID 65532 with a read-only root.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: install exactly uv.lock into a self-contained venv ------------------------
FROM ${PYTHON_IMAGE} AS builder
# uv pinned by version and hash, as the Makefile pins it (a test keeps the two equal).
ARG UV_VERSION=0.13.9
ARG UV_SHA256="d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19 ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_PROJECT_ENVIRONMENT=/opt/o4o \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python -m venv /opt/uv \
    && printf 'uv==%s' "${UV_VERSION}" > /tmp/uv.txt \
    && for sum in ${UV_SHA256}; do printf ' --hash=sha256:%s' "${sum}" >> /tmp/uv.txt; done \
    && /opt/uv/bin/pip install --require-hashes -r /tmp/uv.txt
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY operator/ operator/
COPY dashboard/ dashboard/
# --frozen: exactly the lock, no resolution; no extras (test, dev, bench stay out); the project itself
# as a built wheel. Byte-compiled here: the final root filesystem is read-only, so Python could not cache .pyc.
RUN /opt/uv/bin/uv sync --frozen --no-editable --python "$(command -v python)" \
    && /opt/o4o/bin/python -c "import o4o_operator, o4o_dashboard"

# ---- final: the venv and the templates, nothing else from the build ---------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="o4o-operator" \
      org.opencontainers.image.description="Kubernetes operator for DeploymentInstance (deploy.o4o.io) and its dashboard" \
      org.opencontainers.image.licenses="Apache-2.0"
# HOME and TMPDIR point at /tmp, the pod's only writable mount (an emptyDir).
ENV PATH=/opt/o4o/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    O4O_TEMPLATES=/app/templates
COPY --from=builder /opt/o4o /opt/o4o
COPY templates/ /app/templates/
WORKDIR /app
# 65532 is the conventional "nonroot" UID; it has no entry in /etc/passwd and needs none.
USER 65532:65532
# 8080 liveness (/healthz), 9090 metrics (/metrics), 8000 dashboard.
EXPOSE 8080 9090 8000
ENTRYPOINT ["o4o-operator"]
CMD ["run", "--all-namespaces"]
