"""The built-in connectors: ldif, ldap and azuread."""
