"""The database wing: Optuna's ``RDBStorage`` that waits out outages and creates each trial
exactly once (:mod:`.storage`), the worker's trial cache in front of it (:mod:`.worker_cache`),
dead trials failed with their copy queued in one transaction (:mod:`.stale`), and SQLite
files made ready for several processes (:mod:`.sqlite`). Private: ``storage`` re-exports
what callers need."""
