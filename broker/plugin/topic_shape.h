/* The shape of a topic the policy can judge, checked in the broker before anything asks Postgres:
 * "system/health", or "org/<uuid>/..." with levels of letters, digits, _ . - (1 to 64 of them;
 * in a subscription filter also "+", and "#" last), at most 20 levels. Anything else is refused
 * at once: junk costs nothing and never reaches the database. */
#ifndef TOPIC_SHAPE_H
#define TOPIC_SHAPE_H
#include <stdbool.h>
#include <stddef.h>

bool topic_is_well_formed(const char *topic, bool filter);
/* 8-4-4-4-12 lowercase hex, as Postgres prints a uuid (what the policy's regexes accept): the
 * len characters at s, or the first 36 of a string (which may be shorter: reading stops at the
 * first character out of place). */
bool uuid_is_canonical(const char *s, size_t len);
bool uuid_starts(const char *s);
#endif
