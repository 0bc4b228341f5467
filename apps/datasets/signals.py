"""What the datasets app tells the rest of the platform, without knowing who listens.

``outcome_data_changed`` is sent inside the transaction of every change to an outcome's data (a new
version, a status change, a restore). The analyses app answers it by recording recompute requests
in the same transaction (``apps.analyses.services.on_outcome_data_changed``), so the request
commits or rolls back with the change; datasets never imports analyses.

``upload_checked`` is sent when an upload has passed every check, before anything is stored or
previewed: a receiver returns warnings (``UploadError``) about the rows for the data manager (the
analyses app: rows that no analysis would use, ``apps.analyses.selectors.on_upload_checked``).
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent with ``outcome`` (an ``apps.consortium.models.Outcome``) inside the change's transaction.
outcome_data_changed = Signal()

#: Sent with ``outcome`` and ``rows`` (the upload's canonical rows); receivers return a list of
#: warnings, which the upload's answer and preview show beside its own.
upload_checked = Signal()
