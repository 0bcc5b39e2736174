"""mlops_platform."""
