#include "jwks.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG(level, fmt, ...) mosquitto_log_printf(level, "{\"component\":\"supabase-auth\"," fmt "}", __VA_ARGS__)

#define MAX_BODY 65536          /* a JWKS holds a few keys; more is not one */
#define MAX_KEYS 64
#define MAX_KID 255

struct jwk {
	char *kid;
	char alg[6];                /* ES256 or RS256: a token must name the same */
	char *pem;
};

struct jwks {
	char *url;
	CURL *curl;
	int64_t refresh_ms, refetch_ms;
	struct jwk *keys;
	size_t n;
	bool loaded;                /* a fetch has succeeded at least once */
	int64_t last_ok_ms, last_attempt_ms;
	unsigned failures;          /* fetches failed in a row */
	char errbuf[CURL_ERROR_SIZE];
};

struct body {
	char *data;
	size_t len;
	bool too_big;
};

/* For values that come from the network or the environment into a JSON log line. */
static const char *json_text(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	for(; s && *s && o + 7 < cap; s++){
		unsigned char c = (unsigned char)*s;
		if(c == '"' || c == '\\'){ out[o++] = '\\'; out[o++] = (char)c; }
		else if(c < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
		else out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

bool jwks_url_ok(const char *url)
{
	if(!url || !*url) return false;
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
	       && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
	       && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK
	       && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) && host && *host;
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* ------------------------------------------------------------------------------------------- */
/* JWK to PEM */

/* base64url without padding, as JWKs write it; -1 when it is not that or does not fit. */
static long b64url(const char *s, unsigned char *out, size_t cap)
{
	unsigned acc = 0, bits = 0;
	size_t n = 0;
	for(; *s; s++){
		int v;
		char c = *s;
		if(c >= 'A' && c <= 'Z') v = c - 'A';
		else if(c >= 'a' && c <= 'z') v = c - 'a' + 26;
		else if(c >= '0' && c <= '9') v = c - '0' + 52;
		else if(c == '-') v = 62;
		else if(c == '_') v = 63;
		else return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if(bits >= 8){
			bits -= 8;
			if(n == cap) return -1;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if(bits >= 6 || acc != 0) return -1;       /* a lone sixth of a byte, or stray bits */
	return (long)n;
}

static char *to_pem(EVP_PKEY *pkey)
{
	char *pem = NULL;
	EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	BIO *bio = BIO_new(BIO_s_mem());
	if(check && bio && EVP_PKEY_public_check(check) == 1 && PEM_write_bio_PUBKEY(bio, pkey) == 1){
		char *data;
		long len = BIO_get_mem_data(bio, &data);
		if(len > 0) pem = strndup(data, (size_t)len);
	}
	BIO_free(bio);
	EVP_PKEY_CTX_free(check);
	return pem;
}

static char *from_params(const char *type, OSSL_PARAM *params)
{
	char *pem = NULL;
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if(ctx && EVP_PKEY_fromdata_init(ctx) == 1 && EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1){
		pem = to_pem(pkey);
	}
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return pem;
}

static const char *member(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *ec_pem(const cJSON *k, char **pem)
{
	const char *crv = member(k, "crv"), *x = member(k, "x"), *y = member(k, "y");
	if(!crv || strcmp(crv, "P-256") != 0) return "curve_not_p256";
	unsigned char point[65];
	point[0] = 0x04;                           /* uncompressed: 04 || x || y */
	if(!x || !y || b64url(x, point + 1, 32) != 32 || b64url(y, point + 33, 32) != 32) return "bad_coordinates";
	char group[] = "prime256v1";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
		OSSL_PARAM_construct_end(),
	};
	*pem = from_params("EC", params);
	return *pem ? NULL : "not_a_valid_key";
}

static const char *rsa_pem(const cJSON *k, char **pem)
{
	const char *n64 = member(k, "n"), *e64 = member(k, "e");
	unsigned char n[1024], e[8];
	long nl = n64 ? b64url(n64, n, sizeof n) : -1, el = e64 ? b64url(e64, e, sizeof e) : -1;
	if(nl <= 0 || el <= 0) return "bad_modulus_or_exponent";
	BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	const char *why = NULL;
	if(!bn || !be || !bld){
		why = "out_of_memory";
	}else if(BN_num_bits(bn) < 2048){
		why = "rsa_under_2048_bits";
	}else if(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1
	         || !(params = OSSL_PARAM_BLD_to_param(bld))){
		why = "out_of_memory";
	}else if(!(*pem = from_params("RSA", params))){
		why = "not_a_valid_key";
	}
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return why;
}

/* NULL with *key filled, or why this JWK cannot verify tokens here. */
static const char *jwk_read(const cJSON *k, struct jwk *key)
{
	const char *kid = member(k, "kid"), *kty = member(k, "kty"), *alg = member(k, "alg"), *use = member(k, "use");
	if(!kid || !*kid || strlen(kid) > MAX_KID) return "no_kid";
	if(use && strcmp(use, "sig") != 0) return "not_for_signatures";
	const cJSON *ops = cJSON_GetObjectItemCaseSensitive(k, "key_ops");
	if(ops){
		bool verify = false;
		const cJSON *op;
		cJSON_ArrayForEach(op, ops) verify |= cJSON_IsString(op) && strcmp(op->valuestring, "verify") == 0;
		if(!verify) return "not_for_verifying";
	}
	char *pem = NULL;
	const char *why;
	/* A key's algorithm follows from its type; a JWK that names another is not used at all. Only
	 * asymmetric keys: a shared secret ("oct") must never come from a public document. */
	if(kty && strcmp(kty, "EC") == 0){
		if(alg && strcmp(alg, "ES256") != 0) return "algorithm_not_allowed";
		why = ec_pem(k, &pem);
		memcpy(key->alg, "ES256", 6);
	}else if(kty && strcmp(kty, "RSA") == 0){
		if(alg && strcmp(alg, "RS256") != 0) return "algorithm_not_allowed";
		why = rsa_pem(k, &pem);
		memcpy(key->alg, "RS256", 6);
	}else{
		return "key_type_not_allowed";
	}
	if(why) return why;
	key->kid = strdup(kid);
	if(!key->kid){ free(pem); return "out_of_memory"; }
	key->pem = pem;
	return NULL;
}

static void free_keys(struct jwk *keys, size_t n)
{
	for(size_t i = 0; i < n; i++){
		free(keys[i].kid);
		free(keys[i].pem);
	}
	free(keys);
}

/* NULL with the usable keys, or why the document is no JWKS (then the caller keeps its set).
 * Keys that cannot be used are left out and counted; the first one's reason is kept. */
static const char *parse_set(const char *json, struct jwk **out, size_t *n_out, size_t *skipped, const char **skip_why)
{
	cJSON *root = cJSON_Parse(json);
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if(!cJSON_IsArray(keys)){
		cJSON_Delete(root);
		return "not a JWKS (no keys array)";
	}
	int size = cJSON_GetArraySize(keys);
	if(size > MAX_KEYS){
		cJSON_Delete(root);
		return "more than 64 keys";
	}
	struct jwk *set = calloc(size > 0 ? (size_t)size : 1, sizeof *set);
	if(!set){
		cJSON_Delete(root);
		return "out of memory";
	}
	size_t n = 0;
	const cJSON *k;
	cJSON_ArrayForEach(k, keys){
		struct jwk key = { 0 };
		const char *why = jwk_read(k, &key);
		for(size_t i = 0; !why && i < n; i++){
			if(strcmp(set[i].kid, key.kid) == 0){     /* which one a token meant is unknowable */
				why = "duplicate_kid";
				free(key.kid);
				free(key.pem);
			}
		}
		if(why){
			if(!*skipped) *skip_why = why;
			(*skipped)++;
			continue;
		}
		set[n++] = key;
	}
	cJSON_Delete(root);
	*out = set;
	*n_out = n;
	return NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Fetching */

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
	struct body *b = userdata;
	size_t n = size * count;
	if(b->len + n > MAX_BODY){
		b->too_big = true;
		return 0;                               /* aborts the transfer */
	}
	char *grown = realloc(b->data, b->len + n + 1);
	if(!grown) return 0;
	b->data = grown;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static bool same_set(const struct jwk *a, size_t na, const struct jwk *b, size_t nb)
{
	if(na != nb) return false;
	for(size_t i = 0; i < na; i++){
		if(strcmp(a[i].kid, b[i].kid) != 0 || strcmp(a[i].pem, b[i].pem) != 0) return false;
	}
	return true;
}

static void log_loaded(const struct jwks *j, const char *trigger, size_t skipped, const char *skip_why)
{
	char kids[1024] = "", one[2 * MAX_KID + 8];
	size_t used = 0;
	for(size_t i = 0; i < j->n && used < sizeof kids; i++){
		char escaped[2 * MAX_KID + 1];
		int w = snprintf(one, sizeof one, "%s\"%s\"", i ? "," : "", json_text(j->keys[i].kid, escaped, sizeof escaped));
		if(w < 0 || used + (size_t)w >= sizeof kids) break;
		memcpy(kids + used, one, (size_t)w + 1);
		used += (size_t)w;
	}
	LOG(MOSQ_LOG_NOTICE, "\"msg\":\"signing keys loaded\",\"trigger\":\"%s\",\"keys\":%zu,\"kids\":[%s],\"skipped\":%zu,\"skip_reason\":\"%s\"",
	    trigger, j->n, kids, skipped, skipped ? skip_why : "");
}

static bool fetch(struct jwks *j, int64_t now, const char *trigger)
{
	j->last_attempt_ms = now;
	struct body b = { 0 };
	j->errbuf[0] = '\0';
	curl_easy_setopt(j->curl, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(j->curl);
	long status = 0;
	curl_easy_getinfo(j->curl, CURLINFO_RESPONSE_CODE, &status);
	char detail[96];
	const char *error = NULL;
	struct jwk *keys = NULL;
	size_t n = 0, skipped = 0;
	const char *skip_why = "";
	if(rc != CURLE_OK){
		error = b.too_big ? "response over 64 KiB" : j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc);
	}else if(status != 200){
		snprintf(detail, sizeof detail, "HTTP status %ld", status);
		error = detail;
	}else{
		error = parse_set(b.data ? b.data : "", &keys, &n, &skipped, &skip_why);
	}
	free(b.data);
	if(error){
		j->failures++;
		char url[512], err[2 * CURL_ERROR_SIZE];
		LOG(MOSQ_LOG_WARNING, "\"msg\":\"JWKS fetch failed; keeping the last good keys\",\"url\":\"%s\",\"trigger\":\"%s\",\"error\":\"%s\",\"keys_kept\":%zu,\"failures_in_a_row\":%u",
		    json_text(j->url, url, sizeof url), trigger, json_text(error, err, sizeof err), j->n, j->failures);
		return false;
	}
	bool changed = !j->loaded || !same_set(j->keys, j->n, keys, n);
	free_keys(j->keys, j->n);
	j->keys = keys;
	j->n = n;
	j->loaded = true;
	j->last_ok_ms = now;
	if(changed || j->failures) log_loaded(j, trigger, skipped, skip_why);
	j->failures = 0;
	return true;
}

/* The least time between two fetches. After a failure it doubles with each one in a row: a slow
 * or dead auth server must not cost the broker's thread a timeout every few seconds. Until a
 * first fetch succeeds (an auth server starting beside the broker) it starts at a second and
 * stops at refetch_ms, since without keys every asymmetric token is refused; after that it starts
 * at refetch_ms and stops at refresh_ms. */
static int64_t retry_gap(const struct jwks *j)
{
	if(!j->failures) return j->refetch_ms;
	int64_t gap = j->loaded ? j->refetch_ms : 1000;
	int64_t cap = j->loaded ? j->refresh_ms : j->refetch_ms;
	if(cap > j->refresh_ms) cap = j->refresh_ms;
	for(unsigned i = 1; i < j->failures && gap < cap; i++) gap *= 2;
	return gap < cap ? gap : cap;
}

struct jwks *jwks_new(const char *url, int64_t refresh_ms, int64_t refetch_ms, long timeout_ms, int64_t now_ms)
{
	if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
	struct jwks *j = calloc(1, sizeof *j);
	if(!j || !(j->url = strdup(url)) || !(j->curl = curl_easy_init())){
		if(j) free(j->url);
		free(j);
		curl_global_cleanup();
		return NULL;
	}
	j->refresh_ms = refresh_ms;
	j->refetch_ms = refetch_ms;
	CURL *c = j->curl;
	curl_easy_setopt(c, CURLOPT_URL, j->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MAX_BODY);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "supabase-auth-mosquitto");
	fetch(j, now_ms, "start");
	return j;
}

void jwks_free(struct jwks *j)
{
	if(!j) return;
	curl_easy_cleanup(j->curl);
	curl_global_cleanup();
	free_keys(j->keys, j->n);
	free(j->url);
	free(j);
}

void jwks_tick(struct jwks *j, int64_t now_ms)
{
	if(!j) return;
	int64_t due = j->failures ? j->last_attempt_ms + retry_gap(j) : j->last_ok_ms + j->refresh_ms;
	if(now_ms >= due) fetch(j, now_ms, "refresh");
}

static const struct jwk *find(const struct jwks *j, const char *kid)
{
	for(size_t i = 0; i < j->n; i++){
		if(strcmp(j->keys[i].kid, kid) == 0) return &j->keys[i];
	}
	return NULL;
}

const char *jwks_key(struct jwks *j, const char *kid, const char *alg, int64_t now_ms, const char **why)
{
	const struct jwk *k = find(j, kid);
	if(!k && now_ms - j->last_attempt_ms >= retry_gap(j)){
		fetch(j, now_ms, "unknown_kid");
		k = find(j, kid);
	}
	if(!k){
		*why = j->loaded ? "unknown_signing_key" : "signing_keys_unavailable";
		return NULL;
	}
	if(strcmp(k->alg, alg) != 0){
		*why = "algorithm_not_allowed";
		return NULL;
	}
	return k->pem;
}

size_t jwks_count(const struct jwks *j)
{
	return j ? j->n : 0;
}
