"""Small shared kernel: ids, clock, errors, settings. Importable from everywhere."""
