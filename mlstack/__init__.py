"""mlstack: the domain package of the ML CI/CD/CT stack."""
