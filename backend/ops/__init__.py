"""Running the service in production: the server, request limits, metrics, structured logs.

Nothing here holds a domain rule; it wraps the app the domains build.
"""
