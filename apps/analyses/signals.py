"""What the analyses app tells the rest of the platform, without knowing who listens.

Both signals are sent inside the transaction that makes the change, so that a receiver that records
work (a webhook delivery in its outbox) commits or rolls back with the change: nothing is announced
that did not happen, and nothing that happened goes unannounced.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent with ``result`` (the new current ``AnalysisResult``) and ``previous_id`` (the id of the
#: analysis's current result before it, or None) when a computation becomes the current result.
result_stored = Signal()

#: Sent with ``result`` when the steering group releases it to members and API clients: for them
#: it is new now, though it became current earlier.
result_released = Signal()

#: Sent with ``release`` when the steering group publishes a release.
release_published = Signal()
