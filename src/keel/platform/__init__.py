"""Platform deployment (story 00a): declarative template, approval, provisioning, validation, rollback."""
