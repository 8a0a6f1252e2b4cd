"""Extension objects, created unbound; create_app() binds them."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from app.models import Base

db = SQLAlchemy(model_class=Base)
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
csrf = CSRFProtect()
