/* Mosquitto 2.0 plugin (API version 5): clients sign in with a Supabase access token or a device
 * API key as password; Postgres (schema mqtt) decides what they may publish, subscribe to and
 * receive. Answers are cached (see acl_cache.h); Postgres announces changes on channel mqtt_acl,
 * naming the organization or principal they touch, and the plugin drops those answers (all of
 * them for an announcement it cannot attribute). After authentication a client's username becomes
 * its principal, "user:<id>", "device:<api key id>" or "service", which the ACL check reads.
 *
 * Configuration (mosquitto.conf):   plugin /path/to/supabase_auth.so
 *   plugin_opt_cache_seconds 5        how long an answer is trusted (bounds revocation when a NOTIFY is lost)
 *   plugin_opt_stale_seconds 30       how long cached answers keep serving while Postgres is down
 *   plugin_opt_cache_size 65536       slots in the cache
 *   plugin_opt_poll_ms 50             how often a busy broker looks for announcements between ticks
 *   plugin_opt_usage_seconds 60       how often the messages published per organization go to Postgres
 *   plugin_opt_usage_orgs 65536       organizations counted between two hand-overs
 *   plugin_opt_jwks_seconds 600       how often the signing keys are fetched again, so a key removed
 *                                     from the JWKS is refused within this bound (hosted edges cache
 *                                     the JWKS about as long)
 *   plugin_opt_jwks_refetch_seconds 30  least time between two fetches for tokens whose kid the set
 *                                     lacks: random kids cannot make the broker hammer the auth server
 *   plugin_opt_jwks_timeout_ms 2000   a fetch's limit; fetches run on Mosquitto's only thread
 * A malformed or unknown option, or a malformed variable, is logged and the plugin does not load.
 * From the environment only:
 *   MQTT_AUTH_DB_URL                  postgres URL for the role mqtt_broker
 *   MQTT_AUTH_JWKS_URL                http(s) URL of the project's JWKS (ES256/RS256 tokens, key by kid)
 *   MQTT_AUTH_JWT_SECRET              HS256 secret of the project (legacy tokens); one of the two is needed
 *   MQTT_AUTH_SECRET_KEY              the project's sb_secret_ key: the backend's own services (optional)
 */
#include <errno.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "acl_cache.h"
#include "db.h"
#include "jwks.h"
#include "msg_count.h"
#include "token.h"
#include "topic_shape.h"

#define LOG(level, fmt, ...) mosquitto_log_printf(level, "{\"component\":\"supabase-auth\"," fmt "}", __VA_ARGS__)

struct session {               /* a connected client whose credentials expire */
	struct mosquitto *client;
	char *client_id;
	time_t exp;
};

static struct {
	mosquitto_plugin_id_t *id;
	struct token_keys keys;
	const char *secret_key;    /* the project's secret API key (sb_secret_…): a service login; NULL for none */
	struct jwks *jwks;         /* NULL when only HS256 tokens are accepted */
	struct db *db;
	struct acl_cache *cache;
	int64_t cache_ms, stale_ms, poll_ms, last_poll_ms;
	uint64_t notices;          /* announcements received, so a lookup knows whether one came in meanwhile */
	uint64_t renewals, renewed_ahead;
	struct session *sessions;
	size_t n_sessions, cap_sessions;
	char **kicks;              /* usernames to disconnect at the next tick */
	size_t n_kicks;
	time_t last_expiry_scan;
	struct msg_count *counts;  /* messages published per organization since the last hand-over */
	int64_t usage_ms, last_usage_ms;
	bool counts_full;
} P;

/* Coarse (a few ms): enough for seconds of cache and tens of ms of polling, and cheaper on every message. */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------------- */
/* "user:<id>" or "device:<id>", as Postgres prints ids. */
static bool principal_is_well_formed(const char *s)
{
	const char *id = strncmp(s, "user:", 5) == 0 ? s + 5 : strncmp(s, "device:", 7) == 0 ? s + 7 : NULL;
	return id && strlen(id) == 36 && uuid_is_canonical(id, 36);
}

/* Announcements from Postgres: "org <id>" (answers about that organization's topics changed),
 * "principal user:<id>" / "principal device:<id>" (that principal's answers changed),
 * "kick user:<id>" / "kick device:<id>" (its credentials are revoked: its answers changed and it
 * is disconnected), "flush". Anything else drops every answer: never less than was asked. */
static void on_notify(const char *payload, void *userdata)
{
	(void)userdata;
	P.notices++;
	size_t len = strlen(payload);
	if(len == 40 && strncmp(payload, "org ", 4) == 0 && uuid_is_canonical(payload + 4, 36)){
		acl_cache_forget_org(P.cache, payload + 4);
		return;
	}
	if(strncmp(payload, "principal ", 10) == 0 && principal_is_well_formed(payload + 10)){
		acl_cache_forget_principal(P.cache, payload + 10);
		return;
	}
	bool kick = strncmp(payload, "kick ", 5) == 0 && len < 80;
	if(kick && principal_is_well_formed(payload + 5)){
		acl_cache_forget_principal(P.cache, payload + 5);
	}else{
		acl_cache_clear(P.cache);
	}
	if(kick){
		/* Disconnecting here could free the very client whose check is running: do it at the tick. */
		char **k = realloc(P.kicks, (P.n_kicks + 1) * sizeof *k);
		char *principal = k ? strdup(payload + 5) : NULL;
		if(k) P.kicks = k;
		if(principal){
			P.kicks[P.n_kicks++] = principal;
		}else{
			/* Its answers are already dropped, so the principal's next check asks Postgres again. */
			LOG(MOSQ_LOG_ERR, "\"msg\":\"out of memory: a revocation is not acted on at once\",\"notice\":\"%s\"", payload);
		}
	}
}

/* Remembers when a client's credential expires, so the tick disconnects it then. False when
 * memory runs out: the caller refuses the connection rather than let it outlive its credential. */
static bool track_session(struct mosquitto *client, time_t exp)
{
	const char *id = mosquitto_client_id(client);
	if(!id) return false;
	for(size_t i = 0; i < P.n_sessions; i++){
		if(strcmp(P.sessions[i].client_id, id) == 0){
			P.sessions[i].client = client;
			P.sessions[i].exp = exp;
			return true;
		}
	}
	if(P.n_sessions == P.cap_sessions){
		size_t cap = P.cap_sessions ? P.cap_sessions * 2 : 64;
		struct session *s = realloc(P.sessions, cap * sizeof *s);
		if(!s) return false;
		P.sessions = s;
		P.cap_sessions = cap;
	}
	char *copy = strdup(id);
	if(!copy) return false;
	P.sessions[P.n_sessions++] = (struct session){ client, copy, exp };
	return true;
}

static void forget_session(size_t i)
{
	free(P.sessions[i].client_id);
	P.sessions[i] = P.sessions[--P.n_sessions];
}

/* ------------------------------------------------------------------------------------------- */
/* Compares in time independent of where the strings first differ. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;
	for(size_t i = 0; i < la && i < lb; i++) diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

static int refuse(struct mosquitto *client, const char *kind, const char *reason)
{
	LOG(MOSQ_LOG_NOTICE, "\"msg\":\"connection refused\",\"client_id\":\"%s\",\"address\":\"%s\",\"credential\":\"%s\",\"reason\":\"%s\"",
	    mosquitto_client_id(client), mosquitto_client_address(client), kind, reason);
	return MOSQ_ERR_AUTH;
}

/* A user's or device's client id starts with its own id ("<id>", or "<id>-", "<id>:", "<id>_",
 * "<id>." and more): Mosquitto closes the older of two connections with one client id, so an id
 * anyone may choose would let another tenant's client disconnect a victim and take over its
 * session. Bound to the principal, an id can only collide with the principal's own. */
static bool client_id_bound(const char *client_id, const char *principal_id)
{
	size_t n = strlen(principal_id);
	if(!client_id || strncmp(client_id, principal_id, n) != 0) return false;
	char next = client_id[n];
	return next == '\0' || next == '-' || next == ':' || next == '_' || next == '.';
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event; (void)userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	char principal[64];
	time_t exp = 0;
	if(!ed->password || !*ed->password) return refuse(ed->client, "none", "no_password");

	if(strncmp(ed->password, "sb_secret_", 10) == 0){
		if(!P.secret_key || !same_secret(ed->password, P.secret_key)) return refuse(ed->client, "secret_key", "unknown_key");
		if(mosquitto_set_username(ed->client, "service") != MOSQ_ERR_SUCCESS) return refuse(ed->client, "secret_key", "internal");
		return MOSQ_ERR_SUCCESS;       /* a secret key does not expire; revoking it is rotating it */
	}

	if(strncmp(ed->password, "sk_", 3) == 0){
		char key_id[37], sqlstate[6] = "";
		long expires_at = 0;
		enum db_answer a = db_connect_device(P.db, ed->password, key_id, &expires_at, sqlstate);
		if(a == DB_DOWN) return refuse(ed->client, "api_key", "database_unavailable");
		if(a != DB_YES){
			const char *why = strcmp(sqlstate, "TN021") == 0 ? "revoked" : strcmp(sqlstate, "TN022") == 0 ? "expired"
			                : strcmp(sqlstate, "MQ001") == 0 ? "no_mqtt_topics" : "unknown_key";
			return refuse(ed->client, "api_key", why);
		}
		snprintf(principal, sizeof principal, "device:%s", key_id);
		exp = (time_t)expires_at;
	}else{
		struct verified_token t;
		const char *why = token_verify(&P.keys, ed->password, time(NULL), &t);
		if(why) return refuse(ed->client, "token", why);
		if(t.role == TOKEN_SERVICE){
			snprintf(principal, sizeof principal, "service");
		}else{
			enum db_answer a = db_user_may_connect(P.db, t.sub);
			if(a == DB_DOWN) return refuse(ed->client, "token", "database_unavailable");
			if(a != DB_YES) return refuse(ed->client, "token", "user_gone_or_banned");
			snprintf(principal, sizeof principal, "user:%s", t.sub);
		}
		exp = t.exp;
	}
	const char *principal_id = strchr(principal, ':');
	if(principal_id && !client_id_bound(mosquitto_client_id(ed->client), principal_id + 1)){
		return refuse(ed->client, strncmp(principal, "device:", 7) == 0 ? "api_key" : "token", "client_id_not_bound");
	}
		if(mosquitto_set_username(ed->client, principal) != MOSQ_ERR_SUCCESS){
		return refuse(ed->client, "token", "internal");
	}
	if(exp > 0 && !track_session(ed->client, exp)) return refuse(ed->client, "token", "internal");
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------------------------- */
/* Principals asked together: Postgres array literals of their kinds and ids, and the principals. */
struct batch {
	char *kinds, *ids, *principals;    /* principals NUL-separated */
	size_t kinds_len, ids_len, principals_len, kinds_cap, ids_cap, principals_cap, n;
	bool failed;
};

static void append(struct batch *b, char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if(b->failed) return;
	if(*len + n + 1 > *cap){
		size_t cap2 = (*len + n + 1) * 2;
		char *p = realloc(*buf, cap2);
		if(!p){
			b->failed = true;
			return;
		}
		*buf = p;
		*cap = cap2;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static void add_to_batch(void *ctx, const char *principal)
{
	struct batch *b = ctx;
	if(!principal_is_well_formed(principal)) return;     /* one malformed id would fail the whole array */
	const char *colon = strchr(principal, ':');
	const char *sep = b->n ? "," : "{";
	append(b, &b->kinds, &b->kinds_len, &b->kinds_cap, sep, 1);
	append(b, &b->kinds, &b->kinds_len, &b->kinds_cap, principal, (size_t)(colon - principal));
	append(b, &b->ids, &b->ids_len, &b->ids_cap, sep, 1);
	append(b, &b->ids, &b->ids_len, &b->ids_cap, colon + 1, strlen(colon + 1));
	append(b, &b->principals, &b->principals_len, &b->principals_cap, principal, strlen(principal) + 1);
	b->n++;
}

#define RENEW_MAX 5000   /* principals in one statement: at ~50 µs of Postgres each, within its 2 s statement_timeout */

/* A read the cache cannot answer, asked together with the topic's other readers whose answers can
 * no longer be trusted either: the first delivery of a message to 2,000 subscribers after a quiet
 * spell (or after their organization changed) then costs the broker's only thread one round trip
 * rather than 2,000. -1 when there is no one to ask with, or Postgres refused the batch. */
static int ask_read_with_others(const char *username, const char *topic, int64_t now, int64_t *answered_at)
{
	if(!principal_is_well_formed(username)) return -1;
	struct batch b = { 0 };
	add_to_batch(&b, username);
	acl_cache_readers_to_renew(P.cache, topic, now, P.cache_ms, username, RENEW_MAX - 1, add_to_batch, &b);
	append(&b, &b.kinds, &b.kinds_len, &b.kinds_cap, "}", 1);
	append(&b, &b.ids, &b.ids_len, &b.ids_cap, "}", 1);
	int rc = -1;
	bool *answers = b.n > 1 && !b.failed ? malloc(b.n * sizeof *answers) : NULL;
	if(answers){
		enum db_answer a = db_allows_many(P.db, b.kinds, b.ids, b.n, topic, "read", answers);
		if(a == DB_YES){
			const char *p = b.principals;
			for(size_t i = 0; i < b.n; i++, p += strlen(p) + 1) acl_cache_put(P.cache, p, 'r', topic, answers[i], now, i > 0);
			*answered_at = now;
			rc = answers[0] ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
			P.renewals++;
			P.renewed_ahead += b.n - 1;
		}else if(a == DB_DOWN){
			rc = MOSQ_ERR_ACL_DENIED;                          /* fail closed */
		}
	}
	free(answers);
	free(b.kinds);
	free(b.ids);
	free(b.principals);
	return rc;
}

/* The answer for (username, access, topic), from the cache while it may be trusted, else from
 * Postgres; *answered_at says when Postgres gave it. access is 'r', 'w' or 's'. */
static int decide(const char *username, char access, const char *topic, int64_t *answered_at)
{
	int64_t now = now_ms();
	bool allowed;
	int64_t at;
	if(acl_cache_get(P.cache, username, access, topic, &allowed, &at)){
		/* A cached denial costs one round trip to Postgres, which brings every announcement
		 * committed before it (a grant must win at once, even over a NOTIFY still in flight);
		 * a cached grant is checked against announcements already received at most every
		 * poll_ms, which bounds how long a revocation takes. */
		uint64_t notices = P.notices;
		if(!allowed){
			db_sync(P.db);
		}else if(now - P.last_poll_ms >= P.poll_ms){
			P.last_poll_ms = now;
			db_poll(P.db);
		}
		bool still = P.notices == notices || acl_cache_get(P.cache, username, access, topic, &allowed, &at);
		if(still && now - at < (db_is_up(P.db) ? P.cache_ms : P.stale_ms)){
			*answered_at = at;
			return allowed ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
		}
	}
	if(access == 'r' && P.cache_ms > 0){          /* with no cache, every reader would be asked for every delivery */
		int rc = ask_read_with_others(username, topic, now, answered_at);
		if(rc != -1) return rc;
	}
	const char *colon = strchr(username, ':');
	char kind[8];
	if(!colon || colon - username >= (long)sizeof kind) return MOSQ_ERR_ACL_DENIED;
	snprintf(kind, sizeof kind, "%.*s", (int)(colon - username), username);
	const char *access_name = access == 'r' ? "read" : access == 'w' ? "write" : "subscribe";
	enum db_answer a = db_allows(P.db, kind, colon + 1, topic, access_name);
	if(a == DB_DOWN || a == DB_REFUSED) return MOSQ_ERR_ACL_DENIED;     /* fail closed */
	acl_cache_put(P.cache, username, access, topic, a == DB_YES, now, false);
	*answered_at = now;
	return a == DB_YES ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event; (void)userdata;
	struct mosquitto_evt_acl_check *ed = event_data;
	char access;
	switch(ed->access){
		case MOSQ_ACL_READ: access = 'r'; break;
		case MOSQ_ACL_WRITE: access = 'w'; break;
		case MOSQ_ACL_SUBSCRIBE: access = 's'; break;
		case MOSQ_ACL_UNSUBSCRIBE: return MOSQ_ERR_SUCCESS;
		default: return MOSQ_ERR_ACL_DENIED;
	}
	const char *username = mosquitto_client_username(ed->client);
	if(!username || !ed->topic) return MOSQ_ERR_ACL_DENIED;
	bool service = strcmp(username, "service") == 0;
	/* Junk is refused here, for nothing: no database round trip, no cache slot. Reads skip it: a
	 * delivered message's topic passed it when the message (or a will) was published, unless the
	 * service published it, and reads are most of the checks. */
	if(!service && access != 'r' && !topic_is_well_formed(ed->topic, access == 's')) return MOSQ_ERR_ACL_DENIED;
	int64_t answered_at;
	int rc = service ? MOSQ_ERR_SUCCESS : decide(username, access, ed->topic, &answered_at);
	if(rc == MOSQ_ERR_SUCCESS && access == 's' && !service && !strpbrk(ed->topic, "+#")){
		/* mqtt.allows answers a read of a concrete topic as it answers its subscription (pgTAP 36
		 * and 37 hold it to that): the first delivery then needs no round trip of its own. The
		 * answer keeps its age, so it is trusted no longer than the subscription's. */
		acl_cache_put(P.cache, username, 'r', ed->topic, true, answered_at, false);
	}
	/* A write check is made once for each message a client publishes: the place to count them. */
	if(rc == MOSQ_ERR_SUCCESS && access == 'w' && !msg_count_add(P.counts, ed->topic)){
		P.counts_full = true;              /* this message goes uncounted; the next tick makes room */
	}
	return rc;
}

/* Hands the counts to Postgres; kept for the next try when it cannot take them. */
static void hand_over_counts(void)
{
	char *json = msg_count_json(P.counts);
	if(!json) return;
	enum db_answer answer = db_record_messages(P.db, json);
	if(answer == DB_YES){
		msg_count_clear(P.counts);
		P.counts_full = false;
	}else{
		LOG(MOSQ_LOG_WARNING, "\"msg\":\"message counts not handed over; kept for the next try\",\"organizations\":%zu", msg_count_orgs(P.counts));
	}
	free(json);
}

/* ------------------------------------------------------------------------------------------- */
static int on_tick(int event, void *event_data, void *userdata)
{
	(void)event; (void)event_data; (void)userdata;
	int64_t now = now_ms();
	db_tick(P.db, now, 20);
	P.last_poll_ms = now;
	jwks_tick(P.jwks, now);

	for(size_t i = 0; i < P.n_kicks; i++){
		if(!P.kicks[i]) continue;    /* NULL would kick every client */
		LOG(MOSQ_LOG_NOTICE, "\"msg\":\"credentials revoked, disconnecting\",\"principal\":\"%s\"", P.kicks[i]);
		mosquitto_kick_client_by_username(P.kicks[i], false);
		free(P.kicks[i]);
	}
	P.n_kicks = 0;

	if(P.counts_full || now - P.last_usage_ms >= P.usage_ms){
		P.last_usage_ms = now;
		hand_over_counts();
	}

	time_t wall = time(NULL);
	if(wall != P.last_expiry_scan){
		P.last_expiry_scan = wall;
		for(size_t i = 0; i < P.n_sessions;){
			if(P.sessions[i].exp <= wall){
				/* Forget first: kicking runs on_disconnect, which must no longer find this session. */
				char *id = P.sessions[i].client_id;
				P.sessions[i].client_id = NULL;
				forget_session(i);
				/* never NULL here (track_session stores only copies it made), and NULL would mean
				 * "every client" to mosquitto_kick_client_by_clientid */
				if(id){
					LOG(MOSQ_LOG_NOTICE, "\"msg\":\"credentials expired, disconnecting\",\"client_id\":\"%s\"", id);
					mosquitto_kick_client_by_clientid(id, false);
					free(id);
				}
			}else{
				i++;
			}
		}
	}
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	(void)event; (void)userdata;
	struct mosquitto_evt_disconnect *ed = event_data;
	for(size_t i = 0; i < P.n_sessions; i++){
		if(P.sessions[i].client == ed->client){   /* not a newer connection that took over its client id */
			forget_session(i);
			break;
		}
	}
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------------------------- */
static const char *const OPTIONS[] = {
	"cache_seconds", "stale_seconds", "cache_size", "poll_ms", "usage_seconds", "usage_orgs",
	"jwks_seconds", "jwks_refetch_seconds", "jwks_timeout_ms",
};

/* A bad value is not replaced by the default: a typo must not quietly change a security bound. */
static long option(struct mosquitto_opt *opts, int n, const char *name, long fallback, long min, long max, bool *bad)
{
	for(int i = 0; i < n; i++){
		if(strcmp(opts[i].key, name) == 0){
			char *end;
			errno = 0;
			long v = strtol(opts[i].value, &end, 10);
			if(errno || end == opts[i].value || *end || v < min || v > max){
				LOG(MOSQ_LOG_ERR, "\"msg\":\"bad option: the plugin does not load\",\"option\":\"plugin_opt_%s\",\"min\":%ld,\"max\":%ld", name, min, max);
				*bad = true;
				return fallback;
			}
			return v;
		}
	}
	return fallback;
}

static bool unknown_options(struct mosquitto_opt *opts, int n)
{
	bool unknown = false;
	for(int i = 0; i < n; i++){
		bool known = false;
		for(size_t k = 0; k < sizeof OPTIONS / sizeof OPTIONS[0]; k++) known |= strcmp(opts[i].key, OPTIONS[k]) == 0;
		if(!known){
			LOG(MOSQ_LOG_ERR, "\"msg\":\"unknown option: the plugin does not load\",\"option\":\"plugin_opt_%.64s\"", opts[i].key);
			unknown = true;
		}
	}
	return unknown;
}

/* An empty variable counts as unset, as the entrypoint reads it. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static const char *jwks_lookup(void *ctx, const char *kid, const char *alg, const char **why)
{
	return jwks_key(ctx, kid, alg, now_ms(), why);
}

static const struct { int event; MOSQ_FUNC_generic_callback fn; } CALLBACKS[] = {
	{ MOSQ_EVT_BASIC_AUTH, on_basic_auth },
	{ MOSQ_EVT_ACL_CHECK, on_acl_check },
	{ MOSQ_EVT_TICK, on_tick },
	{ MOSQ_EVT_DISCONNECT, on_disconnect },
};

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	memset(&P, 0, sizeof P);
	P.id = identifier;
	const char *url = env("MQTT_AUTH_DB_URL");
	const char *jwks_url = env("MQTT_AUTH_JWKS_URL");
	P.keys.hs_secret = env("MQTT_AUTH_JWT_SECRET");
	P.secret_key = env("MQTT_AUTH_SECRET_KEY");
	/* Every problem is logged before giving up, so one start shows them all. */
	bool bad = false;
	if(!url){
		LOG(MOSQ_LOG_ERR, "\"msg\":\"%s\"", "MQTT_AUTH_DB_URL is not set: the postgres URL of the role mqtt_broker");
		bad = true;
	}
	if(!jwks_url && !P.keys.hs_secret){
		LOG(MOSQ_LOG_ERR, "\"msg\":\"%s\"", "set MQTT_AUTH_JWKS_URL (asymmetric signing keys) and/or MQTT_AUTH_JWT_SECRET (HS256): tokens cannot be verified");
		bad = true;
	}
	if(jwks_url && !jwks_url_ok(jwks_url)){
		LOG(MOSQ_LOG_ERR, "\"msg\":\"%s\"", "MQTT_AUTH_JWKS_URL must be an http:// or https:// URL");
		bad = true;
	}
	if(P.keys.hs_secret && strlen(P.keys.hs_secret) < 32){
		LOG(MOSQ_LOG_ERR, "\"msg\":\"%s\"", "MQTT_AUTH_JWT_SECRET must be at least 32 characters");
		bad = true;
	}
	if(P.secret_key && strncmp(P.secret_key, "sb_secret_", 10) != 0){
		LOG(MOSQ_LOG_ERR, "\"msg\":\"%s\"", "MQTT_AUTH_SECRET_KEY must be the project's sb_secret_ key");
		bad = true;
	}
	if(env("MQTT_AUTH_JWT_PUBLIC_KEY_FILE")){
		/* refused rather than ignored: a broker that silently stopped accepting its tokens would
		 * look like an outage of the auth server */
		LOG(MOSQ_LOG_ERR, "\"msg\":\"%s\"", "MQTT_AUTH_JWT_PUBLIC_KEY_FILE is no longer read: set MQTT_AUTH_JWKS_URL to the project's JWKS");
		bad = true;
	}
	bad |= unknown_options(opts, opt_count);
	P.cache_ms = option(opts, opt_count, "cache_seconds", 5, 0, 3600, &bad) * 1000;
	P.stale_ms = option(opts, opt_count, "stale_seconds", 30, 0, 86400, &bad) * 1000;
	P.poll_ms = option(opts, opt_count, "poll_ms", 50, 0, 10000, &bad);
	long cache_size = option(opts, opt_count, "cache_size", 65536, 16, 1 << 24, &bad);
	P.usage_ms = option(opts, opt_count, "usage_seconds", 60, 1, 86400, &bad) * 1000;
	long usage_orgs = option(opts, opt_count, "usage_orgs", 65536, 16, 1 << 22, &bad);
	long jwks_seconds = option(opts, opt_count, "jwks_seconds", 600, 1, 86400, &bad);
	long jwks_refetch_seconds = option(opts, opt_count, "jwks_refetch_seconds", 30, 1, 3600, &bad);
	long jwks_timeout_ms = option(opts, opt_count, "jwks_timeout_ms", 2000, 100, 10000, &bad);
	if(bad) return MOSQ_ERR_INVAL;

	uint64_t seed;
	if(getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) seed = (uint64_t)time(NULL) ^ (uint64_t)now_ms() << 20;
	P.cache = acl_cache_new((size_t)cache_size, seed);
	if(!P.cache) return MOSQ_ERR_NOMEM;
	P.counts = msg_count_new((size_t)usage_orgs);
	if(!P.counts) return MOSQ_ERR_NOMEM;
	P.last_usage_ms = now_ms();
	if(jwks_url){
		P.jwks = jwks_new(jwks_url, jwks_seconds * 1000, jwks_refetch_seconds * 1000, jwks_timeout_ms, now_ms());
		if(!P.jwks) return MOSQ_ERR_NOMEM;
		P.keys.public_key = jwks_lookup;
		P.keys.ctx = P.jwks;
	}
	P.db = db_new(url, on_notify, NULL);
	if(!P.db) return MOSQ_ERR_NOMEM;

	/* All or nothing: a broker without its authentication or ACL callback would let clients in
	 * unchecked, so a failed registration undoes the others and fails the plugin's start. */
	for(size_t i = 0; i < sizeof CALLBACKS / sizeof CALLBACKS[0]; i++){
		int rc = mosquitto_callback_register(P.id, CALLBACKS[i].event, CALLBACKS[i].fn, NULL, NULL);
		if(rc != MOSQ_ERR_SUCCESS){
			LOG(MOSQ_LOG_ERR, "\"msg\":\"cannot register a callback\",\"event\":%d,\"error\":\"%s\"", CALLBACKS[i].event, mosquitto_strerror(rc));
			while(i-- > 0) mosquitto_callback_unregister(P.id, CALLBACKS[i].event, CALLBACKS[i].fn, NULL);
			db_free(P.db);
			msg_count_free(P.counts);
			acl_cache_free(P.cache);
			jwks_free(P.jwks);
			return rc;
		}
	}
	LOG(MOSQ_LOG_NOTICE, "\"msg\":\"ready\",\"cache_seconds\":%ld,\"stale_seconds\":%ld,\"hs256\":%s,\"jwks\":%s,\"jwks_keys\":%zu,\"jwks_seconds\":%ld,\"jwks_refetch_seconds\":%ld",
	    (long)(P.cache_ms / 1000), (long)(P.stale_ms / 1000), P.keys.hs_secret ? "true" : "false", P.jwks ? "true" : "false",
	    jwks_count(P.jwks), jwks_seconds, jwks_refetch_seconds);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata; (void)opts; (void)opt_count;
	for(size_t i = 0; i < sizeof CALLBACKS / sizeof CALLBACKS[0]; i++){
		mosquitto_callback_unregister(P.id, CALLBACKS[i].event, CALLBACKS[i].fn, NULL);
	}
	struct acl_cache_stats st = acl_cache_stats(P.cache);
	LOG(MOSQ_LOG_NOTICE, "\"msg\":\"stopped\",\"cache_hits\":%llu,\"cache_misses\":%llu,\"cache_clears\":%llu,\"cache_forgotten_orgs\":%llu,\"cache_forgotten_principals\":%llu,\"renewals\":%llu,\"renewed_ahead\":%llu",
	    (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.clears,
	    (unsigned long long)st.forgotten_orgs, (unsigned long long)st.forgotten_principals,
	    (unsigned long long)P.renewals, (unsigned long long)P.renewed_ahead);
	hand_over_counts();                 /* a clean stop loses no counts */
	db_free(P.db);
	msg_count_free(P.counts);
	acl_cache_free(P.cache);
	for(size_t i = 0; i < P.n_sessions; i++) free(P.sessions[i].client_id);
	for(size_t i = 0; i < P.n_kicks; i++) free(P.kicks[i]);
	free(P.sessions);
	free(P.kicks);
	jwks_free(P.jwks);
	return MOSQ_ERR_SUCCESS;
}
