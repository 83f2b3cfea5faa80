"""Accounts: users, role assignments, console sessions, API tokens, invitations, authentication."""
