/* Messages published per organization (topics "org/<organization id>/..."), counted in memory
 * from the broker's write checks and handed to Postgres as JSON now and then, so usage tracking
 * sees MQTT traffic per organization, which Mosquitto's own $SYS figures (totals) cannot give. */
#ifndef MSG_COUNT_H
#define MSG_COUNT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg_count;

struct msg_count *msg_count_new(size_t max_orgs);
void msg_count_free(struct msg_count *mc);

/* Counts one message if the topic is an organization's; false when it could not be counted
 * because the table is full (hand the counts over, then count again). */
bool msg_count_add(struct msg_count *mc, const char *topic);
size_t msg_count_orgs(const struct msg_count *mc);
/* {"<org id>": n, ...}, malloc'd; NULL when nothing was counted or out of memory. */
char *msg_count_json(const struct msg_count *mc);
void msg_count_clear(struct msg_count *mc);
#endif
