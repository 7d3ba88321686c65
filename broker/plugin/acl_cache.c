#include "acl_cache.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	char *key;        /* NULL when empty */
	uint64_t hash;
	int64_t at_ms;
	bool allowed;
};

struct acl_cache {
	struct slot *slots;
	size_t mask;
	size_t used;
	uint64_t hits, misses, evictions, clears;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for(; *s; s++){
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct acl_cache *acl_cache_new(size_t slots)
{
	size_t n = 1;
	while(n < slots) n <<= 1;
	struct acl_cache *c = calloc(1, sizeof *c);
	if(!c) return NULL;
	c->slots = calloc(n, sizeof *c->slots);
	if(!c->slots){ free(c); return NULL; }
	c->mask = n - 1;
	return c;
}

void acl_cache_clear(struct acl_cache *c)
{
	for(size_t i = 0; i <= c->mask; i++){
		free(c->slots[i].key);
		c->slots[i].key = NULL;
	}
	c->used = 0;
	c->clears++;
}

void acl_cache_free(struct acl_cache *c)
{
	if(!c) return;
	acl_cache_clear(c);
	free(c->slots);
	free(c);
}

bool acl_cache_get(struct acl_cache *c, const char *key, int64_t now_ms, bool *allowed, int64_t *age_ms)
{
	uint64_t h = fnv1a(key);
	struct slot *s = &c->slots[h & c->mask];
	if(s->key && s->hash == h && strcmp(s->key, key) == 0){
		*allowed = s->allowed;
		*age_ms = now_ms - s->at_ms;
		c->hits++;
		return true;
	}
	c->misses++;
	return false;
}

void acl_cache_put(struct acl_cache *c, const char *key, bool allowed, int64_t now_ms)
{
	uint64_t h = fnv1a(key);
	struct slot *s = &c->slots[h & c->mask];
	if(s->key && !(s->hash == h && strcmp(s->key, key) == 0)){
		c->evictions++;
	}
	if(!s->key || strcmp(s->key, key) != 0){
		char *copy = strdup(key);
		if(!copy) return;          /* out of memory: simply not cached */
		if(s->key) free(s->key); else c->used++;
		s->key = copy;
	}
	s->hash = h;
	s->allowed = allowed;
	s->at_ms = now_ms;
}

struct acl_cache_stats acl_cache_stats(const struct acl_cache *c)
{
	struct acl_cache_stats st = { c->hits, c->misses, c->evictions, c->clears, c->mask + 1, c->used };
	return st;
}
