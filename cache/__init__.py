"""The read-through cache over Redis that the federation's ``Gateway`` asks before any source.

``cache.readthrough.RedisCache`` is the cache; ``cache.redis_client.make_redis`` builds its client.
"""
