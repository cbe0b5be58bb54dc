"""Finding targets in files, modules and packages; importing them; class variants and parameters."""
