#include "topic_shape.h"

#include <string.h>

#define MAX_LEVELS 20
#define MAX_LEVEL_LEN 64

static bool level_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool uuid_is_canonical(const char *s, size_t len)
{
	if(len != 36) return false;
	for(size_t i = 0; i < 36; i++){
		if(i == 8 || i == 13 || i == 18 || i == 23){
			if(s[i] != '-') return false;
		}else if(!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))){
			return false;
		}
	}
	return true;
}

bool topic_is_well_formed(const char *topic, bool filter)
{
	if(!topic || !*topic) return false;
	if(strcmp(topic, "system/health") == 0) return true;
	int level = 0;
	bool exercise = false;                 /* org/<org>/exercise/<uuid>[/team/<uuid>/...] */
	const char *p = topic;
	for(;;){
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if(len == 0 || len > MAX_LEVEL_LEN || ++level > MAX_LEVELS) return false;
		bool wildcard = filter && len == 1 && (*p == '+' || *p == '#');
		if(level == 1){
			if(len != 3 || strncmp(p, "org", 3) != 0) return false;
		}else if(level == 2){
			if(!uuid_is_canonical(p, len)) return false;
		}else if(wildcard){
			if(*p == '#' && end) return false;       /* # only last */
		}else if(exercise && (level == 4 || level == 6)){
			if(!uuid_is_canonical(p, len)) return false;       /* an exercise's or a team's id */
		}else{
			for(size_t i = 0; i < len; i++) if(!level_char(p[i])) return false;
		}
		if(level == 3) exercise = len == 8 && strncmp(p, "exercise", 8) == 0;
		if(level == 5 && exercise && !(wildcard || (len == 4 && strncmp(p, "team", 4) == 0) || (len == 7 && strncmp(p, "control", 7) == 0))){
			return false;
		}
		if(!end) break;
		p = end + 1;
	}
	return level >= 3;
}
