"""ONC RPC over TCP: the record codec (oncrpc), the asyncio server (server) with its duplicate
request cache (drc) and busy polling (busypoll), and the one client (client)."""
