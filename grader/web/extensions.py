"""Flask extensions, created unbound so blueprints can import them without the app.

The database is not one of them: it is the service layer's (:mod:`grader.service.database`).
"""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
# Storage comes from RATELIMIT_STORAGE_URI (create_app: Redis when the broker is Redis,
# so every gunicorn process shares the count), Retry-After from RATELIMIT_HEADERS_ENABLED.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
