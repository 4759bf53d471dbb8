"""The Excel glue: the refresh entry point, the VBA sources, configuration and the command line."""
