/* A bounded cache of ACL answers: a fixed array of slots addressed by the key's hash, where a new
 * answer overwrites whatever shared its slot. Lookups cost one hash and one string compare, so
 * the check Mosquitto makes for every delivered message stays off the database. */
#ifndef ACL_CACHE_H
#define ACL_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl_cache;

struct acl_cache *acl_cache_new(size_t slots);          /* rounded up to a power of two */
void acl_cache_free(struct acl_cache *cache);

/* Finds key: true with *allowed and *age_ms set, false on a miss. */
bool acl_cache_get(struct acl_cache *cache, const char *key, int64_t now_ms, bool *allowed, int64_t *age_ms);
void acl_cache_put(struct acl_cache *cache, const char *key, bool allowed, int64_t now_ms);
void acl_cache_clear(struct acl_cache *cache);

struct acl_cache_stats { uint64_t hits, misses, evictions, clears; size_t slots, used; };
struct acl_cache_stats acl_cache_stats(const struct acl_cache *cache);
#endif
