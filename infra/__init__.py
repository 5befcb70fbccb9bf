"""The AWS resources of an OpCenter, defined once, and how they are packaged for deployment."""
