"""The service's routes, one router per concern; each reads the shared state (settings, analyzer
pool, video jobs) from `app.state`, which `create_app` sets."""
