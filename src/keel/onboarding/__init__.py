"""Connector deployment (00b), source onboarding (02), handshake and preflight (02b), ingestion
runs and connector failure and recovery (13): the control plane over ``keel.connectors`` and
``keel.ingestion``.
"""
