"""Text formats: paper and review text <-> schema, LaTeX, PDF, BibTeX, archives."""
