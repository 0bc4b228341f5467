from django.apps import AppConfig


class AnalysesConfig(AppConfig):
    name = "apps.analyses"
    label = "analyses"

    def ready(self) -> None:
        # Analyses depend on datasets, never the reverse: a data change is announced by a signal
        # and answered here, inside the change's transaction.
        from apps.analyses.selectors import on_upload_checked
        from apps.analyses.services import on_outcome_created, on_outcome_data_changed
        from apps.consortium.signals import outcome_changed, outcome_created
        from apps.datasets.signals import outcome_data_changed, upload_checked

        outcome_data_changed.connect(
            on_outcome_data_changed, dispatch_uid="analyses.recompute_on_data_change"
        )
        # the data dictionary is the floor: a new outcome gets its default analysis, a changed one
        # (its time points, instruments, direction) is recomputed
        outcome_created.connect(on_outcome_created, dispatch_uid="analyses.default_for_new_outcome")
        outcome_changed.connect(on_outcome_data_changed, dispatch_uid="analyses.recompute_on_outcome_change")
        # an upload's rows that no analysis would read: a warning before anything is stored
        upload_checked.connect(on_upload_checked, dispatch_uid="analyses.warn_unused_rows")
