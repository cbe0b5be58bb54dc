"""The engine, its worker pool and protocol, the cache and sharding."""
