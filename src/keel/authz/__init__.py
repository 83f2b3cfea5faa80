"""Pure authorization core: the action catalog, the Cedar baseline generated from the
persona matrix, the one evaluator every enforcement point uses, and RBAC bundle validation.

No database and no HTTP here; ``keel.rbac`` wires this to stored bundles and break-glass grants.
"""
