"""Schema contracts (stories 00c, 03a-03g): Raw, GDP and KPI contracts, their registry and lifecycle."""
