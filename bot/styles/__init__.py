"""A server's styles: team adapters beside its members' (see `store` and the README's "Styles")."""
