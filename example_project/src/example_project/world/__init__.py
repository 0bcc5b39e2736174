"""The example world: its configuration, its drivers, the true completion model, the generator."""
