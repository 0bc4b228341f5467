"""REST API views, one module per resource. Every queryset starts from what the requesting user may
see; the services' refusals reach the client through ``apps.api.errors.exception_handler``.

- ``consortium``: centres and outcomes (the data dictionary and its upload templates)
- ``datasets``: datasets, their uploads and previews, versions, lifecycle and exports
- ``analyses``: analyses and their history
- ``results``: result snapshots, their blocks and exports
- ``releases``: releases, read and published
- ``tokens``: API tokens
- ``audit``: the audit trail
"""
