"""RBAC lifecycle (define, apply, review bundles), break-glass, and the enforcement point."""
