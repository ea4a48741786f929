# syntax=docker/dockerfile:1
# o4o-operator and o4o-dashboard, one image:
#   operator:  docker run IMAGE                      (o4o-operator run --all-namespaces)
#   dashboard: docker run --entrypoint o4o-dashboard IMAGE --all-namespaces ...
# manifests/operator and manifests/dashboard run it as UID 65532 with a read-only root.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: resolve and install the package into a self-contained venv ---------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/o4o
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY dashboard/ dashboard/
# Byte-compiled here: the final root filesystem is read-only, so Python could not cache .pyc.
RUN /opt/o4o/bin/pip install . \
    && /opt/o4o/bin/pip uninstall --yes pip \
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
