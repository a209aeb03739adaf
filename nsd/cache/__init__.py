"""The block cache as the vfs uses it: read-through, write types, persisting, operator controls.

policy (read/write types), service (Cache: the BlockStore tied to the namespace), reader
(read-through), ingest (sealing into blocks), writes (content per write type), persister
(background persist queue), ttl (TTL enforcement), controls (load/free/pin/persist/ttl).
"""
