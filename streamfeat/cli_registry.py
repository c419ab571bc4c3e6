"""`streamfeat apply`: register the repo's definitions (core/features.py) through the API,
and the credentials the CLI sends to the API.

The CLI sends ``STREAMFEAT_API_KEY`` when set (production: a real key), else the local
stack's well-known development key for the role the command needs (refused by a production
API, so nothing silently works with a development key there).
"""

from __future__ import annotations

import os

from feature_api.settings import Role, dev_key

API_KEY_ENV = "STREAMFEAT_API_KEY"


def api_headers(role: Role) -> dict[str, str]:
    """Headers authenticating a CLI call that needs ``role``."""
    return {"X-API-Key": os.environ.get(API_KEY_ENV) or dev_key(role)}
