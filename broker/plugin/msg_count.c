#include "msg_count.h"
#include "topic_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORG_ID_LEN 36

struct slot { char org[ORG_ID_LEN + 1]; uint64_t n; };
struct msg_count { struct slot *slots; size_t cap, used; };

struct msg_count *msg_count_new(size_t max_orgs)
{
	struct msg_count *mc = calloc(1, sizeof *mc);
	if(!mc) return NULL;
	mc->cap = 16;
	while(mc->cap < max_orgs * 2) mc->cap <<= 1;   /* at most half full: probes stay short */
	mc->slots = calloc(mc->cap, sizeof *mc->slots);
	if(!mc->slots){ free(mc); return NULL; }
	return mc;
}

void msg_count_free(struct msg_count *mc)
{
	if(!mc) return;
	free(mc->slots);
	free(mc);
}

/* Only the canonical lower-case form: the organization ids Postgres writes into topics. */
static bool org_id_at(const char *s)
{
	return uuid_starts(s) && (s[ORG_ID_LEN] == '/' || s[ORG_ID_LEN] == '\0');
}

/* Eight bytes at a time: this runs for every message published. */
static uint64_t hash(const char *s)
{
	uint64_t h = 0, w;
	for(int i = 0; i < 32; i += 8){
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	uint32_t tail;
	memcpy(&tail, s + 32, 4);
	h = (h ^ tail) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 32);
}

bool msg_count_add(struct msg_count *mc, const char *topic)
{
	if(strncmp(topic, "org/", 4) != 0 || !org_id_at(topic + 4)) return true;    /* not an organization's */
	const char *org = topic + 4;
	for(size_t i = hash(org) & (mc->cap - 1);; i = (i + 1) & (mc->cap - 1)){
		struct slot *s = &mc->slots[i];
		if(s->n == 0){
			if(mc->used * 2 >= mc->cap) return false;      /* full until the next hand-over */
			memcpy(s->org, org, ORG_ID_LEN);
			s->org[ORG_ID_LEN] = '\0';
			s->n = 1;
			mc->used++;
			return true;
		}
		if(memcmp(s->org, org, ORG_ID_LEN) == 0){
			s->n++;
			return true;
		}
	}
}

size_t msg_count_orgs(const struct msg_count *mc)
{
	return mc->used;
}

char *msg_count_json(const struct msg_count *mc)
{
	if(mc->used == 0) return NULL;
	size_t cap = 2 + mc->used * (ORG_ID_LEN + 26);          /* "id": 20 digits, */
	char *out = malloc(cap), *p = out;
	if(!out) return NULL;
	*p++ = '{';
	for(size_t i = 0; i < mc->cap; i++){
		if(mc->slots[i].n == 0) continue;
		p += snprintf(p, cap - (size_t)(p - out), "%s\"%s\":%llu", p == out + 1 ? "" : ",", mc->slots[i].org, (unsigned long long)mc->slots[i].n);
	}
	snprintf(p, cap - (size_t)(p - out), "}");
	return out;
}

void msg_count_clear(struct msg_count *mc)
{
	memset(mc->slots, 0, mc->cap * sizeof *mc->slots);
	mc->used = 0;
}
