"""Moved: model clients live in `workbench.models` (this name stays for old imports)."""
from workbench.models import make_client, parse_spec  # noqa: F401
from workbench.models.base import *  # noqa: F401,F403
