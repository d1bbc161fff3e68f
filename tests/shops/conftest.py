from tests.api_fixtures import admin, client, regulator  # noqa: F401
