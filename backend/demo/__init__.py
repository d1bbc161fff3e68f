"""Made-up Bazhong demo data: merchants and two years of their history, recorded
through the services (every item a record), and the demo's random inspection draw.

Only ``honest-metering demo`` and a development first start load this package;
the app never imports it with ``HM_ENV=production``.
"""
