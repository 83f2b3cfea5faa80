"""Control-plane store adapter: SQLAlchemy tables, engine set-up, migrations, unit of work."""
