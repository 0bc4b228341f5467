"""The synthetic demo consortium: its data (``synthetic``) and ``manage.py load_demo``, which builds
it through the same services a consortium's people use. It stands on every other app and none
imports it.
"""
