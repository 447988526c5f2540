"""Failure behaviour of the server stores: lost services, concurrent processes, bad data."""
