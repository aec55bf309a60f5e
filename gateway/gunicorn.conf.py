"""gunicorn settings of the gateway; each can be overridden by environment variables."""

import os

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8080")
# One process with threads keeps the Prometheus registry in one place; scale with replicas.
workers = int(os.environ.get("GATEWAY_WORKERS", "1"))
threads = int(os.environ.get("GATEWAY_THREADS", "8"))
# gthread, with gunicorn's own error answers (414, 431, bad framing) in the API's JSON format.
worker_class = "gateway.gunicorn_worker.JsonErrorWorker"
timeout = 30
graceful_timeout = 10
accesslog = None  # the app logs each request as JSON with its request id (the path, never the query string)
# If an access log is turned on (GUNICORN_CMD_ARGS="--access-logfile -"), its lines, like gunicorn's errors,
# have phone and ID numbers masked (`GET /api/v1/admin/users?phone=138****8000`).
logger_class = "gateway.gunicorn_worker.MaskingLogger"
# gunicorn's control socket lives at one fixed path per user: two gateways on one host would fight over it.
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    """Keep the garbage collector off what imports and the app built: they live as long as the worker.

    A full collection walked every module, protobuf descriptor and route of the gateway: 250-320 ms with the
    GIL held, twice in 15 s at 1,000 catalogue reads/s, stalling every thread of the worker (bench/README.md,
    catalogue p99). Frozen objects are skipped by every later collection (and stay shared with the master).
    """
    import gc

    gc.freeze()
