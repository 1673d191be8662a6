"""Members' records: trigger tokens, photos, adapters, shares."""
