#include "acl_cache.h"

#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 65536
#define NONE UINT32_MAX

struct readers;

struct slot {
	uint64_t hash;
	char *key;                 /* principal '\0' topic '\0'; NULL when empty */
	int64_t at_ms;
	struct readers *readers;   /* for a read answer: the other slots reading its topic */
	uint32_t prev, next;       /* ...linked through these */
	uint32_t org_bucket, org_gen, principal_bucket, principal_gen;
	uint16_t principal_len, topic_len;
	char access;
	bool allowed;
	bool ahead;                /* filled before its principal asked (acl_cache_readers_to_renew) */
	bool used;                 /* found by a lookup since it was filled */
};

/* The slots holding read answers for one topic: whom a delivery on it is checked for. */
struct readers {
	struct readers *next_in_bucket;
	uint64_t hash;
	uint32_t head, count;
	size_t topic_len;
	char topic[];
};

struct acl_cache {
	struct slot *slots;
	size_t mask, used;
	uint64_t seed;
	/* generations per bucket of organizations (the last one: topics of no organization) and of
	 * principals; a slot is valid while both of its buckets are where they were when it was filled */
	uint32_t *org_gen, *principal_gen;
	uint32_t bucket_mask;
	struct readers **topics;
	size_t topics_mask;
	uint64_t hits, misses, evictions, clears, forgotten_orgs, forgotten_principals;
};

/* Eight bytes at a time: the key is hashed on every delivered message. */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
	h ^= w;
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 31);
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
	for(; n >= 8; s += 8, n -= 8){
		uint64_t w;
		memcpy(&w, s, 8);
		h = mix(h, w);
	}
	uint64_t w = (uint64_t)n << 56;          /* the length too: "ab"+"c" and "a"+"bc" differ */
	memcpy(&w, s, n);
	return mix(h, w);
}

static inline uint64_t finish(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

static uint64_t key_hash(const struct acl_cache *c, const char *principal, size_t pl, char access, const char *topic, size_t tl)
{
	return finish(hash_bytes(hash_bytes(c->seed ^ (unsigned char)access, principal, pl), topic, tl));
}

static uint64_t topic_hash(const struct acl_cache *c, const char *topic, size_t tl)
{
	return finish(hash_bytes(c->seed + 1, topic, tl));
}

/* The organization a topic belongs to: "org/<36 characters>/..." (the shape check let only such
 * topics and system/health in). */
static uint32_t org_bucket_of_topic(const struct acl_cache *c, const char *topic, size_t tl)
{
	if(tl >= 40 && memcmp(topic, "org/", 4) == 0 && (topic[40] == '/' || topic[40] == '\0')){
		return (uint32_t)finish(hash_bytes(~c->seed, topic + 4, 36)) & c->bucket_mask;
	}
	return c->bucket_mask + 1;
}

/* Case-blind, so "user:<ID>" from a token and "user:<id>" from Postgres land in one bucket. */
static uint32_t principal_bucket(const struct acl_cache *c, const char *principal)
{
	uint64_t h = c->seed * 3;
	for(const char *p = principal; *p; p++){
		char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		h = mix(h, (unsigned char)ch);
	}
	return (uint32_t)finish(h) & c->bucket_mask;
}

struct acl_cache *acl_cache_new(size_t slots, uint64_t seed)
{
	size_t n = 1;
	while(n < slots) n <<= 1;
	uint32_t buckets = n < MAX_BUCKETS ? (uint32_t)n : MAX_BUCKETS;
	size_t topics = n / 4 < 16 ? 16 : n / 4;
	struct acl_cache *c = calloc(1, sizeof *c);
	if(!c) return NULL;
	c->slots = calloc(n, sizeof *c->slots);
	c->org_gen = calloc((size_t)buckets + 1, sizeof *c->org_gen);
	c->principal_gen = calloc(buckets, sizeof *c->principal_gen);
	c->topics = calloc(topics, sizeof *c->topics);
	if(!c->slots || !c->org_gen || !c->principal_gen || !c->topics){
		free(c->slots);
		free(c->org_gen);
		free(c->principal_gen);
		free(c->topics);
		free(c);
		return NULL;
	}
	c->mask = n - 1;
	c->bucket_mask = buckets - 1;
	c->topics_mask = topics - 1;
	c->seed = seed;
	return c;
}

void acl_cache_clear(struct acl_cache *c)
{
	for(size_t i = 0; i <= c->mask; i++){
		free(c->slots[i].key);
		c->slots[i].key = NULL;
		c->slots[i].readers = NULL;
	}
	for(size_t i = 0; i <= c->topics_mask; i++){
		while(c->topics[i]){
			struct readers *r = c->topics[i];
			c->topics[i] = r->next_in_bucket;
			free(r);
		}
	}
	c->used = 0;
	c->clears++;
}

void acl_cache_free(struct acl_cache *c)
{
	if(!c) return;
	acl_cache_clear(c);
	free(c->slots);
	free(c->org_gen);
	free(c->principal_gen);
	free(c->topics);
	free(c);
}

static struct readers *find_readers(const struct acl_cache *c, const char *topic, size_t tl, uint64_t h)
{
	for(struct readers *r = c->topics[h & c->topics_mask]; r; r = r->next_in_bucket){
		if(r->hash == h && r->topic_len == tl && memcmp(r->topic, topic, tl) == 0) return r;
	}
	return NULL;
}

/* Out of memory: the slot is simply not linked, and its topic is renewed one answer at a time. */
static void link_reader(struct acl_cache *c, uint32_t i, const char *topic, size_t tl)
{
	uint64_t h = topic_hash(c, topic, tl);
	struct readers *r = find_readers(c, topic, tl, h);
	if(!r){
		r = malloc(sizeof *r + tl + 1);
		if(!r) return;
		r->hash = h;
		r->head = NONE;
		r->count = 0;
		r->topic_len = tl;
		memcpy(r->topic, topic, tl + 1);
		r->next_in_bucket = c->topics[h & c->topics_mask];
		c->topics[h & c->topics_mask] = r;
	}
	struct slot *s = &c->slots[i];
	s->readers = r;
	s->prev = NONE;
	s->next = r->head;
	if(r->head != NONE) c->slots[r->head].prev = i;
	r->head = i;
	r->count++;
}

static void unlink_reader(struct acl_cache *c, uint32_t i)
{
	struct slot *s = &c->slots[i];
	struct readers *r = s->readers;
	if(!r) return;
	if(s->prev != NONE) c->slots[s->prev].next = s->next; else r->head = s->next;
	if(s->next != NONE) c->slots[s->next].prev = s->prev;
	s->readers = NULL;
	if(--r->count == 0){
		struct readers **p = &c->topics[r->hash & c->topics_mask];
		while(*p != r) p = &(*p)->next_in_bucket;
		*p = r->next_in_bucket;
		free(r);
	}
}

static bool same_key(const struct slot *s, uint64_t h, const char *principal, size_t pl, char access, const char *topic, size_t tl)
{
	return s->key && s->hash == h && s->access == access && s->principal_len == pl && s->topic_len == tl
	    && memcmp(s->key, principal, pl) == 0 && memcmp(s->key + pl + 1, topic, tl) == 0;
}

static bool still_valid(const struct acl_cache *c, const struct slot *s)
{
	return c->org_gen[s->org_bucket] == s->org_gen && c->principal_gen[s->principal_bucket] == s->principal_gen;
}

bool acl_cache_get(struct acl_cache *c, const char *principal, char access, const char *topic, bool *allowed, int64_t *at_ms)
{
	size_t pl = strlen(principal), tl = strlen(topic);
	uint64_t h = key_hash(c, principal, pl, access, topic, tl);
	struct slot *s = &c->slots[h & c->mask];
	if(same_key(s, h, principal, pl, access, topic, tl) && still_valid(c, s)){
		*allowed = s->allowed;
		*at_ms = s->at_ms;
		s->used = true;
		c->hits++;
		return true;
	}
	c->misses++;
	return false;
}

void acl_cache_put(struct acl_cache *c, const char *principal, char access, const char *topic, bool allowed, int64_t at_ms,
                   bool ahead)
{
	size_t pl = strlen(principal), tl = strlen(topic);
	if(pl > UINT16_MAX || tl > UINT16_MAX) return;      /* not cached; Mosquitto caps topics at 65,535 bytes anyway */
	uint64_t h = key_hash(c, principal, pl, access, topic, tl);
	uint32_t i = (uint32_t)(h & c->mask);
	struct slot *s = &c->slots[i];
	if(!same_key(s, h, principal, pl, access, topic, tl)){
		char *key = malloc(pl + tl + 2);
		if(!key) return;                                 /* out of memory: simply not cached */
		memcpy(key, principal, pl + 1);
		memcpy(key + pl + 1, topic, tl + 1);
		if(s->key){
			if(still_valid(c, s)) c->evictions++;
			unlink_reader(c, i);
			free(s->key);
		}else{
			c->used++;
		}
		*s = (struct slot){ .hash = h, .key = key, .principal_len = (uint16_t)pl, .topic_len = (uint16_t)tl, .access = access };
		if(access == 'r') link_reader(c, i, topic, tl);
	}
	s->org_bucket = org_bucket_of_topic(c, topic, tl);
	s->principal_bucket = principal_bucket(c, principal);
	s->org_gen = c->org_gen[s->org_bucket];
	s->principal_gen = c->principal_gen[s->principal_bucket];
	s->allowed = allowed;
	s->at_ms = at_ms;
	s->ahead = ahead;
	s->used = false;
}

size_t acl_cache_readers_to_renew(struct acl_cache *c, const char *topic, int64_t now_ms, int64_t max_age_ms, const char *skip,
                                  size_t max, void (*fn)(void *ctx, const char *principal), void *ctx)
{
	size_t tl = strlen(topic), n = 0;
	struct readers *r = find_readers(c, topic, tl, topic_hash(c, topic, tl));
	if(!r) return 0;
	for(uint32_t i = r->head; i != NONE && n < max; i = c->slots[i].next){
		const struct slot *s = &c->slots[i];
		if(still_valid(c, s) && now_ms - s->at_ms < max_age_ms) continue;     /* good for a while yet */
		if(s->ahead && !s->used) continue;                                  /* renewed last time, not read since */
		if(strcmp(s->key, skip) == 0) continue;
		fn(ctx, s->key);
		n++;
	}
	return n;
}

void acl_cache_forget_org(struct acl_cache *c, const char *org_id)
{
	char topic[41] = "org/";
	memcpy(topic + 4, org_id, 36);
	topic[40] = '\0';
	c->org_gen[org_bucket_of_topic(c, topic, 40)]++;
	c->forgotten_orgs++;
}

void acl_cache_forget_principal(struct acl_cache *c, const char *principal)
{
	c->principal_gen[principal_bucket(c, principal)]++;
	c->forgotten_principals++;
}

struct acl_cache_stats acl_cache_stats(const struct acl_cache *c)
{
	struct acl_cache_stats st = { c->hits, c->misses, c->evictions, c->clears, c->forgotten_orgs, c->forgotten_principals,
	                              c->mask + 1, c->used };
	return st;
}
