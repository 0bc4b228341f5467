"""Token authentication for API clients and people: ``Authorization: Token <key>``."""

from rest_framework.authentication import TokenAuthentication


class ApiTokenAuthentication(TokenAuthentication):
    """DRF's token authentication; inactive accounts are refused by the base class."""

    keyword = "Token"
