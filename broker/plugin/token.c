#include "token.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int is_uuid(const char *s)
{
	if(!s || strlen(s) != 36) return 0;
	for(int i = 0; i < 36; i++){
		if(i == 8 || i == 13 || i == 18 || i == 23){
			if(s[i] != '-') return 0;
		}else if(!isxdigit((unsigned char)s[i])){
			return 0;
		}
	}
	return 1;
}

struct header {
	char alg[8];
	char kid[256];              /* "" when the header has none */
};

/* The header's "alg" and "kid", read before verifying so that the key is chosen by what the
 * server allows for that kid, never by what the token says (an HS256 token must not be checked
 * with a public key as its HMAC secret). False when the header is not a JSON object with an alg. */
static bool read_header(const char *token, struct header *h)
{
	const char *dot = strchr(token, '.');
	if(!dot || dot == token || dot - token > 2048) return false;
	size_t n = (size_t)(dot - token);
	char b64[2052];
	memcpy(b64, token, n);
	for(size_t i = 0; i < n; i++){
		if(b64[i] == '-') b64[i] = '+';
		else if(b64[i] == '_') b64[i] = '/';
	}
	while(n % 4) b64[n++] = '=';
	unsigned char json[1600];
	int len = EVP_DecodeBlock(json, (const unsigned char *)b64, (int)n);
	if(len <= 0) return false;
	json[len] = '\0';
	cJSON *header = cJSON_Parse((const char *)json);
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
	/* cJSON reads the first of two equal names, libjwt's parser the last: a header naming alg or
	 * kid twice could choose the key by one and verify by the other, so it is refused. */
	int names = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, header) names += item->string && (strcmp(item->string, "alg") == 0 || strcmp(item->string, "kid") == 0);
	bool ok = cJSON_IsString(alg) && strlen(alg->valuestring) < sizeof h->alg
	       && (!kid || (cJSON_IsString(kid) && strlen(kid->valuestring) < sizeof h->kid))
	       && names == 1 + (kid != NULL);
	if(ok){
		strcpy(h->alg, alg->valuestring);
		strcpy(h->kid, kid ? kid->valuestring : "");
	}
	cJSON_Delete(header);
	return ok;
}

const char *token_verify(const struct token_keys *keys, const char *token, time_t now, struct verified_token *out)
{
	if(!token || strlen(token) > 8192) return "malformed";
	struct header h;
	if(!read_header(token, &h)) return "malformed";
	const char *key = NULL;
	jwt_alg_t expected = JWT_ALG_NONE;
	if(strcmp(h.alg, "HS256") == 0){
		/* whatever its kid: the JWKS holds public keys only, and HS256 is checked with the secret */
		if(!keys->hs_secret) return "algorithm_not_allowed";
		key = keys->hs_secret; expected = JWT_ALG_HS256;
	}else if(strcmp(h.alg, "ES256") == 0 || strcmp(h.alg, "RS256") == 0){
		if(!keys->public_key) return "algorithm_not_allowed";
		if(!h.kid[0]) return "unknown_signing_key";   /* one key by its kid, never the first that fits */
		const char *why = "unknown_signing_key";
		key = keys->public_key(keys->ctx, h.kid, h.alg, &why);
		if(!key) return why;
		expected = h.alg[0] == 'E' ? JWT_ALG_ES256 : JWT_ALG_RS256;
	}else{
		return "algorithm_not_allowed";     /* none, and everything else */
	}

	jwt_t *jwt = NULL;
	if(jwt_decode(&jwt, token, (const unsigned char *)key, (int)strlen(key)) != 0 || !jwt){
		return "bad_signature";
	}
	const char *reason = NULL;
	errno = 0;
	long exp = jwt_get_grant_int(jwt, "exp");
	int exp_missing = errno != 0;
	const char *role = jwt_get_grant(jwt, "role");
	const char *sub = jwt_get_grant(jwt, "sub");
	if(jwt_get_alg(jwt) != expected){
		reason = "bad_signature";
	}else if(exp_missing || exp <= 0){
		reason = "no_expiry";
	}else if(exp <= now){
		reason = "expired";
	}else if(role && strcmp(role, "service_role") == 0){
		out->role = TOKEN_SERVICE;
		out->sub[0] = '\0';
	}else if(role && strcmp(role, "authenticated") == 0 && is_uuid(sub)){
		out->role = TOKEN_USER;
		memcpy(out->sub, sub, 37);
	}else{
		reason = "role_not_allowed";        /* the anon key, or a token without a user */
	}
	out->exp = (time_t)exp;
	jwt_free(jwt);
	return reason;
}
