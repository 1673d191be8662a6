"""Pictures from a resident pipeline with members' adapters switched in."""
