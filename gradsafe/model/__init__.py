"""The data model: frozen dataclasses and the table of finding codes."""
