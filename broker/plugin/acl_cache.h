/* A bounded cache of ACL answers: a fixed array of slots addressed by the key's hash (principal,
 * access, topic), where a new answer overwrites whatever shared its slot. A lookup costs one hash
 * and one compare, so the check Mosquitto makes for every delivered message stays off the
 * database.
 *
 * Answers can be dropped per organization (the topic's "org/<id>/..."), per principal, or all at
 * once. Each slot remembers the generation of its organization's and its principal's bucket when
 * it was filled, and dropping bumps a bucket, so forgetting an organization costs the same
 * whatever the cache holds: a tenant changing roles in a loop does not make other tenants'
 * answers cold (only those of the few organizations that share its bucket).
 *
 * Read answers are also listed by topic, so the first delivery of a message whose readers'
 * answers have all expired can have them renewed in one round trip rather than one each. */
#ifndef ACL_CACHE_H
#define ACL_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl_cache;

/* slots is rounded up to a power of two; seed keys the hash, so which keys share a slot or a
 * bucket cannot be worked out from outside. */
struct acl_cache *acl_cache_new(size_t slots, uint64_t seed);
void acl_cache_free(struct acl_cache *cache);

/* access is 'r', 'w' or 's'. Finds the answer: true with *allowed and *at_ms (when it was
 * answered) set, false on a miss (never filled, overwritten, or dropped since). */
bool acl_cache_get(struct acl_cache *cache, const char *principal, char access, const char *topic, bool *allowed,
                   int64_t *at_ms);
/* at_ms is when Postgres gave the answer: an answer copied from another keeps its age. ahead:
 * renewed for a principal that did not ask (acl_cache_readers_to_renew). */
void acl_cache_put(struct acl_cache *cache, const char *principal, char access, const char *topic, bool allowed,
                   int64_t at_ms, bool ahead);

/* Calls fn, at most max times, with each principal (but skip) whose read answer for topic the
 * cache holds but can no longer trust (older than max_age_ms, or dropped), leaving out those
 * renewed ahead last time and not read since (no longer subscribed, or gone). fn must not change
 * the cache. Returns how many. */
size_t acl_cache_readers_to_renew(struct acl_cache *cache, const char *topic, int64_t now_ms, int64_t max_age_ms,
                                  const char *skip, size_t max, void (*fn)(void *ctx, const char *principal), void *ctx);

/* org_id: 36 characters, as in topics. */
void acl_cache_forget_org(struct acl_cache *cache, const char *org_id);
void acl_cache_forget_principal(struct acl_cache *cache, const char *principal);
void acl_cache_clear(struct acl_cache *cache);

struct acl_cache_stats { uint64_t hits, misses, evictions, clears, forgotten_orgs, forgotten_principals; size_t slots, used; };
struct acl_cache_stats acl_cache_stats(const struct acl_cache *cache);
#endif
