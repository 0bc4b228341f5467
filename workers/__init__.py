"""Background work: the Celery application (``workers.celery``), its tasks, and the numpy engine
(``workers.metaanalysis``), which imports nothing from Django."""
