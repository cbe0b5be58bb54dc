"""What fails a run: configuration, filters, suppressions, baseline."""
