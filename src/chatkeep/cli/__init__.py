"""The ``chatkeep`` command line: parse options, build the configuration, call the library."""
