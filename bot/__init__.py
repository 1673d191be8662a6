"""doppel's Discord side. Never imports torch: GPU work goes through the job layer."""
