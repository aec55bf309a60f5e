"""WSGI entry point for gunicorn: `gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app`."""

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.logs import configure_logging

settings = GatewaySettings.from_env()
configure_logging("gateway", settings.log_level)
app = create_app(settings)
