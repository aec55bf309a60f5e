"""WSGI entry point for gunicorn: `gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app`."""

from gateway.app import create_app
from gateway.catalog_cache import ProductChangedListener
from gateway.config import GatewaySettings
from services.common.config import Env, KafkaSettings
from services.common.logs import configure_logging

settings = GatewaySettings.from_env()
configure_logging("gateway", settings.log_level)
app = create_app(settings)
# Each worker drops its catalogue cache on product-changed events when a broker is configured.
if "KAFKA_BOOTSTRAP_SERVERS" in settings.environ and settings.catalog_cache_seconds > 0:
    ProductChangedListener(app.extensions["catalog_cache"], KafkaSettings.from_env(Env(settings.environ))).start()
