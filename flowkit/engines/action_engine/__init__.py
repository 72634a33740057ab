"""TaskFlow's module path for its engine classes (``flowkit.engines.action_engine.engine``)."""
