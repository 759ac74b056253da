"""The ``whatsapp`` pluggy project: hookspecs, plugin loading, event dispatch, the middleware
pipelines and the built-in session-tracking plugin."""
