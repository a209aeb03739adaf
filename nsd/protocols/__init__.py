"""Protocol front-ends. They translate to and from `nsd.vfs` and never reach below it."""
