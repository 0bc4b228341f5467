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

#: Sent with ``result`` when a release makes it readable to members and API clients (the release
#: is published without an embargo, or its embargo ends): for them it is new now, though it became
#: current earlier. Sent once per result, by the first release that holds it.
result_released = Signal()

#: Sent with ``release`` (an ``apps.analyses.models.Release``) when it becomes readable to members
#: and API clients: at publication, or when its embargo ends.
release_published = Signal()
