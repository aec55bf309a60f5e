# One image definition, one target per deployable:
#   docker build --target user -t minimall/user .      (user, product, order, member, analytics, gateway)
# A service image's argument is its role: `docker run minimall/user migrate|serve|relay|consume` (default all);
# deploy/k8s passes the same arguments. The gateway runs gunicorn: one gthread worker (GATEWAY_THREADS
# threads) per container keeps the Prometheus registry whole, so scale with replicas, not workers.
# Non-root, runtime dependencies only (requirements.lock; no test or build tools), config only from the environment.
# The base names its Python patch release and Debian release: `python:3.11-slim` moved under us (to trixie when
# Debian's stable did). Where the registry is reachable, pin its digest too (`FROM python:3.11.14-slim-trixie@sha256:...`).
# gen/ is the generated protobuf code committed beside protos/ (`make protos-check`, part of `make test`, keeps it current).
# HEALTHCHECK is for `docker run` and compose; Kubernetes probes with its own (deploy/k8s).
FROM python:3.11.14-slim-trixie AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app:/app/gen PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock .
RUN pip install -r requirements.lock && useradd --uid 10001 --no-create-home mall \
 && mkdir /app/var && chown mall /app/var   # only for a SQLite trial run; deployments set *_DATABASE_URL
COPY gen/ gen/
COPY services/ services/
COPY gateway/ gateway/
USER 10001

FROM base AS user
ENV USER_GRPC_LISTEN=0.0.0.0:50051
EXPOSE 50051 9101
ENTRYPOINT ["python", "-m", "services.user"]
CMD ["all"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "services.common.healthcheck", "user"]

FROM base AS product
ENV PRODUCT_GRPC_LISTEN=0.0.0.0:50052
EXPOSE 50052 9102
ENTRYPOINT ["python", "-m", "services.product"]
CMD ["all"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "services.common.healthcheck", "product"]

FROM base AS order
ENV ORDER_GRPC_LISTEN=0.0.0.0:50053
EXPOSE 50053 9103
ENTRYPOINT ["python", "-m", "services.order"]
CMD ["all"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "services.common.healthcheck", "order"]

FROM base AS member
ENV MEMBER_GRPC_LISTEN=0.0.0.0:50054
EXPOSE 50054 9104
ENTRYPOINT ["python", "-m", "services.member"]
CMD ["all"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "services.common.healthcheck", "member"]

FROM base AS analytics
ENV ANALYTICS_GRPC_LISTEN=0.0.0.0:50055
EXPOSE 50055 9105
ENTRYPOINT ["python", "-m", "services.analytics"]
CMD ["all"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "services.common.healthcheck", "analytics"]

FROM base AS gateway
ENV GATEWAY_BIND=0.0.0.0:8080
EXPOSE 8080
CMD ["gunicorn", "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "services.common.healthcheck", "gateway"]
