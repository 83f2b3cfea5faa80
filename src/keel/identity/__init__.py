"""Who is acting: personas and the permission matrix (``personas``), the authenticated actor, credentials."""
