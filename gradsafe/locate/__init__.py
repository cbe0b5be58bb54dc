"""Which source operation made a finding, and why."""
