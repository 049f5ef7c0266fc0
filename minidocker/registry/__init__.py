"""Chapter 09: the registry server: the OCI distribution API over content-addressed storage."""
