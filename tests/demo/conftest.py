from tests.api_fixtures import client  # noqa: F401
