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
accesslog = None  # the app logs each request as JSON with its request id
# gunicorn's control socket lives at one fixed path per user: two gateways on one host would fight over it.
control_socket_disable = True
