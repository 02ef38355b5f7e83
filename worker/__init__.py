"""Everything that does work: Celery tasks, platforms, points, sinks, storage, config."""
