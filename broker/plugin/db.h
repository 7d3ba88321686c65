/* The plugin's one connection to Postgres: prepared calls into schema mqtt, LISTEN mqtt_acl for
 * cache invalidation, and reconnection in small steps from the broker's tick so that a lost
 * database never stalls the broker's single thread for long. */
#ifndef DB_H
#define DB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
typedef void (*db_notify_fn)(const char *payload, void *userdata);

/* A first, bounded attempt to connect; the broker starts either way and keeps trying. */
struct db *db_new(const char *url, db_notify_fn on_notify, void *userdata);
void db_free(struct db *db);

bool db_is_up(const struct db *db);
/* Advances a reconnection (within budget_ms) and delivers pending notifications. */
void db_tick(struct db *db, int64_t now_ms, int budget_ms);
/* Delivers notifications already received, without waiting. */
void db_poll(struct db *db);
/* One round trip (an empty query): every NOTIFY committed before it has arrived when it returns,
 * since a listening backend sends pending notifications before it reads the next command. */
void db_sync(struct db *db);

enum db_answer { DB_YES, DB_NO, DB_REFUSED, DB_DOWN };
enum db_answer db_allows(struct db *db, const char *kind, const char *id, const char *topic, const char *access);
/* The same question for many principals at once: kinds and ids are Postgres array literals
 * ("{user,device}", "{<id>,<id>}") of n elements; answers[i] is set for each (DB_YES). */
enum db_answer db_allows_many(struct db *db, const char *kinds, const char *ids, size_t n, const char *topic, const char *access, bool *answers);
enum db_answer db_user_may_connect(struct db *db, const char *user_id);
/* DB_REFUSED with sqlstate set (TN020 unknown, TN021 revoked, TN022 expired, MQ001 no topics). */
enum db_answer db_connect_device(struct db *db, const char *api_key, char key_id[37], long *expires_at, char sqlstate[6]);
/* Adds {"<org id>": messages} to today's usage (DB_YES when stored). */
enum db_answer db_record_messages(struct db *db, const char *counts_json);
#endif
