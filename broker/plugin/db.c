#include "db.h"

#include <libpq-fe.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct db {
	char *url;
	PGconn *conn;            /* NULL while down */
	PGconn *pending;         /* a reconnection in progress */
	int64_t next_attempt_ms;
	int backoff_ms;
	db_notify_fn on_notify;
	void *userdata;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *SETUP[] = {
	"set statement_timeout = '2s'",
	"set application_name = 'mosquitto-supabase-auth'",
	"listen mqtt_acl",
	NULL,
};

/* Statements prepared on every (re)connection. */
static const struct { const char *name, *sql; int params; } PREPARED[] = {
	{ "allows", "select mqtt.allows($1, $2::uuid, $3, $4)", 4 },
	{ "allows_many", "select mqtt.allows(p.kind, p.id, $3, $4) from unnest($1::text[], $2::uuid[]) with ordinality as p(kind, id, n) order by p.n", 4 },
	{ "user", "select mqtt.user_may_connect($1::uuid)", 1 },
	{ "device", "select api_key_id, coalesce(extract(epoch from expires_at)::bigint, 0) from mqtt.connect_device($1)", 1 },
	{ "messages", "select mqtt.record_messages($1::jsonb)", 1 },
};

static bool setup(PGconn *conn)
{
	for(int i = 0; SETUP[i]; i++){
		PGresult *r = PQexec(conn, SETUP[i]);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if(!ok) return false;
	}
	for(size_t i = 0; i < sizeof PREPARED / sizeof PREPARED[0]; i++){
		PGresult *r = PQprepare(conn, PREPARED[i].name, PREPARED[i].sql, PREPARED[i].params, NULL);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if(!ok) mosquitto_log_printf(MOSQ_LOG_ERR, "{\"component\":\"supabase-auth\",\"msg\":\"prepare failed\",\"statement\":\"%s\",\"error\":\"%s\"}",
		                             PREPARED[i].name, PQerrorMessage(conn));
		PQclear(r);
		if(!ok) return false;
	}
	return true;
}

static void went_down(struct db *db, const char *why)
{
	if(db->conn){
		mosquitto_log_printf(MOSQ_LOG_WARNING, "{\"component\":\"supabase-auth\",\"msg\":\"database connection lost; cached decisions only, misses are denied\",\"error\":\"%s\"}", why);
		PQfinish(db->conn);
		db->conn = NULL;
	}
	db->next_attempt_ms = now_ms() + db->backoff_ms;
	db->backoff_ms = db->backoff_ms * 2 > 5000 ? 5000 : db->backoff_ms * 2;
}

static void came_up(struct db *db, PGconn *conn)
{
	db->conn = conn;
	db->backoff_ms = 250;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "{\"component\":\"supabase-auth\",\"msg\":\"database connected\"}");
	/* Changes made while we were away were not announced to us: start from a clean cache. */
	db->on_notify("flush", db->userdata);
}

struct db *db_new(const char *url, db_notify_fn on_notify, void *userdata)
{
	struct db *db = calloc(1, sizeof *db);
	if(!db) return NULL;
	db->url = strdup(url);
	if(!db->url){
		free(db);
		return NULL;
	}
	db->on_notify = on_notify;
	db->userdata = userdata;
	db->backoff_ms = 250;
	db->pending = PQconnectStart(db->url);
	db_tick(db, now_ms(), 3000);
	if(!db->conn) mosquitto_log_printf(MOSQ_LOG_WARNING, "{\"component\":\"supabase-auth\",\"msg\":\"database not reachable at start; retrying\"}");
	return db;
}

void db_free(struct db *db)
{
	if(!db) return;
	if(db->conn) PQfinish(db->conn);
	if(db->pending) PQfinish(db->pending);
	free(db->url);
	free(db);
}

bool db_is_up(const struct db *db)
{
	return db->conn != NULL;
}

/* Drives PQconnectPoll, waiting on the socket for at most budget_ms in all. */
static void advance_connect(struct db *db, int budget_ms)
{
	int64_t deadline = now_ms() + budget_ms;
	for(;;){
		PostgresPollingStatusType st = PQconnectPoll(db->pending);
		if(st == PGRES_POLLING_OK){
			PGconn *conn = db->pending;
			db->pending = NULL;
			if(setup(conn)){
				came_up(db, conn);
			}else{
				PQfinish(conn);
				went_down(db, "setup failed");
			}
			return;
		}
		if(st == PGRES_POLLING_FAILED){
			if(db->backoff_ms <= 250){
				mosquitto_log_printf(MOSQ_LOG_WARNING, "{\"component\":\"supabase-auth\",\"msg\":\"database connection failed\",\"error\":\"%s\"}",
				                     strtok(PQerrorMessage(db->pending), "\n") ?: "");
			}
			PQfinish(db->pending);
			db->pending = NULL;
			went_down(db, "connect failed");
			return;
		}
		int left = (int)(deadline - now_ms());
		if(left <= 0) return;                   /* carry on at the next tick */
		struct pollfd p = { PQsocket(db->pending), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0 };
		if(poll(&p, 1, left) <= 0) return;
	}
}

static void deliver_notifications(struct db *db)
{
	PGnotify *n;
	while(db->conn && (n = PQnotifies(db->conn)) != NULL){
		db->on_notify(n->extra, db->userdata);
		PQfreemem(n);
	}
}

void db_poll(struct db *db)
{
	if(!db->conn) return;
	if(!PQconsumeInput(db->conn)){
		went_down(db, PQerrorMessage(db->conn));
		return;
	}
	deliver_notifications(db);
}

void db_sync(struct db *db)
{
	if(!db->conn) return;
	PGresult *r = PQexec(db->conn, "");
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	if(st != PGRES_EMPTY_QUERY && PQstatus(db->conn) == CONNECTION_BAD){
		went_down(db, PQerrorMessage(db->conn));
		return;
	}
	deliver_notifications(db);
}

void db_tick(struct db *db, int64_t now, int budget_ms)
{
	if(db->conn){
		db_poll(db);
		return;
	}
	if(!db->pending){
		if(now < db->next_attempt_ms) return;
		db->pending = PQconnectStart(db->url);
		if(!db->pending || PQstatus(db->pending) == CONNECTION_BAD){
			if(db->pending){ PQfinish(db->pending); db->pending = NULL; }
			went_down(db, "connect failed");
			return;
		}
	}
	advance_connect(db, budget_ms);
}

/* Runs a prepared statement; NULL with *answer set when there is no usable result. */
static PGresult *run(struct db *db, const char *name, int n, const char *const *params, enum db_answer *answer, char sqlstate[6])
{
	if(!db->conn){ *answer = DB_DOWN; return NULL; }
	PGresult *r = PQexecPrepared(db->conn, name, n, params, NULL, NULL, 0);
	if(PQresultStatus(r) == PGRES_TUPLES_OK){
		deliver_notifications(db);
		return r;
	}
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if(PQstatus(db->conn) == CONNECTION_BAD || !state || strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0){
		*answer = DB_DOWN;
		went_down(db, PQerrorMessage(db->conn));
	}else{
		*answer = DB_REFUSED;
		if(sqlstate) snprintf(sqlstate, 6, "%s", state);
		mosquitto_log_printf(MOSQ_LOG_INFO, "{\"component\":\"supabase-auth\",\"msg\":\"database refused\",\"statement\":\"%s\",\"sqlstate\":\"%s\"}", name, state);
	}
	PQclear(r);
	return NULL;
}

static enum db_answer yes_no(struct db *db, const char *name, int n, const char *const *params)
{
	enum db_answer answer;
	PGresult *r = run(db, name, n, params, &answer, NULL);
	if(!r) return answer;
	answer = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? DB_YES : DB_NO;
	PQclear(r);
	return answer;
}

enum db_answer db_allows(struct db *db, const char *kind, const char *id, const char *topic, const char *access)
{
	const char *params[] = { kind, id, topic, access };
	return yes_no(db, "allows", 4, params);
}

enum db_answer db_allows_many(struct db *db, const char *kinds, const char *ids, size_t n, const char *topic, const char *access, bool *answers)
{
	const char *params[] = { kinds, ids, topic, access };
	enum db_answer answer;
	PGresult *r = run(db, "allows_many", 4, params, &answer, NULL);
	if(!r) return answer;
	answer = (size_t)PQntuples(r) == n ? DB_YES : DB_REFUSED;
	for(size_t i = 0; answer == DB_YES && i < n; i++) answers[i] = strcmp(PQgetvalue(r, (int)i, 0), "t") == 0;
	PQclear(r);
	return answer;
}

enum db_answer db_user_may_connect(struct db *db, const char *user_id)
{
	const char *params[] = { user_id };
	return yes_no(db, "user", 1, params);
}

enum db_answer db_connect_device(struct db *db, const char *api_key, char key_id[37], long *expires_at, char sqlstate[6])
{
	const char *params[] = { api_key };
	enum db_answer answer;
	PGresult *r = run(db, "device", 1, params, &answer, sqlstate);
	if(!r) return answer;
	answer = DB_NO;
	if(PQntuples(r) == 1){
		snprintf(key_id, 37, "%s", PQgetvalue(r, 0, 0));
		*expires_at = atol(PQgetvalue(r, 0, 1));
		answer = DB_YES;
	}
	PQclear(r);
	return answer;
}

enum db_answer db_record_messages(struct db *db, const char *counts_json)
{
	const char *params[] = { counts_json };
	enum db_answer answer;
	PGresult *r = run(db, "messages", 1, params, &answer, NULL);
	if(!r) return answer;
	PQclear(r);
	return DB_YES;
}
