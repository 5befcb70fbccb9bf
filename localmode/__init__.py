"""The embedded default: the OpCenter on one machine, with moto standing in for AWS."""
