#include "topic_shape.h"

#include <string.h>

#define MAX_LEVELS 20
#define MAX_LEVEL_LEN 64

enum { HEX = 1, LEVEL = 2 };

/* One load per character: this runs for every message a client publishes. */
static const unsigned char CLASS[256] = {
	['0' ... '9'] = HEX | LEVEL, ['a' ... 'f'] = HEX | LEVEL, ['g' ... 'z'] = LEVEL, ['A' ... 'Z'] = LEVEL,
	['_'] = LEVEL, ['.'] = LEVEL, ['-'] = LEVEL,
};

/* Stops at the first character out of place, so s may be shorter than n. */
static bool hex_run(const char *s, size_t n)
{
	for(size_t i = 0; i < n; i++){
		if(!(CLASS[(unsigned char)s[i]] & HEX)) return false;
	}
	return true;
}

bool uuid_starts(const char *s)
{
	return hex_run(s, 8) && s[8] == '-' && hex_run(s + 9, 4) && s[13] == '-' && hex_run(s + 14, 4) && s[18] == '-'
	    && hex_run(s + 19, 4) && s[23] == '-' && hex_run(s + 24, 12);
}

bool uuid_is_canonical(const char *s, size_t len)
{
	return len == 36 && uuid_starts(s);
}

bool topic_is_well_formed(const char *topic, bool filter)
{
	if(!topic) return false;
	if(topic[0] != 'o') return strcmp(topic, "system/health") == 0;
	/* org/<uuid>/ and at least one level more */
	if(strncmp(topic, "org/", 4) != 0 || !uuid_starts(topic + 4) || topic[40] != '/') return false;
	int level = 3;
	bool exercise = false;                 /* org/<org>/exercise/<uuid>[/team/<uuid>/...] */
	const char *p = topic + 41;
	for(;;){
		const char *start = p;
		unsigned char ok = LEVEL, c;
		while((c = (unsigned char)*p) != '/' && c){
			ok &= CLASS[c];
			p++;
		}
		size_t len = (size_t)(p - start);
		if(len == 0 || len > MAX_LEVEL_LEN || level > MAX_LEVELS) return false;
		bool wildcard = filter && len == 1 && (*start == '+' || *start == '#');
		if(wildcard){
			if(*start == '#' && *p) return false;     /* # only last */
		}else if(exercise && (level == 4 || level == 6)){
			if(!uuid_is_canonical(start, len)) return false;  /* an exercise's or a team's id */
		}else if(!ok){
			return false;
		}
		if(level == 3) exercise = len == 8 && memcmp(start, "exercise", 8) == 0;
		if(level == 5 && exercise && !(wildcard || (len == 4 && memcmp(start, "team", 4) == 0) || (len == 7 && memcmp(start, "control", 7) == 0))){
			return false;
		}
		if(!*p) return true;
		p++;
		level++;
	}
}
