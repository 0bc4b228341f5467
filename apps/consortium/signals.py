"""What the data dictionary tells the rest of the platform, without knowing who listens.

Both are sent inside the change's transaction, so what a receiver writes commits or rolls back with
the change. The analyses app answers them (connected in ``AnalysesConfig.ready``): a new outcome
gets its default analysis, a changed one has its analyses recomputed. The consortium app, the floor
the other apps stand on, never imports them.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent with ``outcome`` when an outcome is added to the data dictionary.
outcome_created = Signal()

#: Sent with ``outcome`` when its entry in the data dictionary changed.
outcome_changed = Signal()
