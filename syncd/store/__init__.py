"""The group store: schema, engine set-up, migrations and the admin operations."""
