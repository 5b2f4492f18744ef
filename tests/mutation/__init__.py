"""Mutation testing of the decision modules (`make mutation`; not part of `make test`)."""
