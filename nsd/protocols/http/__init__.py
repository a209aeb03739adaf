"""What all HTTP doors share: connection and request limits (limits), /metrics and the status
page (status), and read-ahead for streamed file bodies (readahead)."""
