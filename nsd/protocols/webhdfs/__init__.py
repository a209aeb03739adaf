"""WebHDFS, as Hadoop serves it: routes dispatches each op to get/put, over auth, params,
context, bodies (JSON), xattr names and checksum."""
