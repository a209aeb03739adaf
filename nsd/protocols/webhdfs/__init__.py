"""webhdfs."""
