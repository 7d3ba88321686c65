#include "token.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <jwt.h>
#include <openssl/evp.h>
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

/* The header's "alg", read before verifying so that the key is chosen by what the server allows,
 * never by what the token says (an HS256 token must not be checked against the public key). */
static char *header_alg(const char *token)
{
	const char *dot = strchr(token, '.');
	if(!dot || dot == token || dot - token > 2048) return NULL;
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
	if(len <= 0) return NULL;
	json[len] = '\0';
	cJSON *header = cJSON_Parse((const char *)json);
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
	char *out = cJSON_IsString(alg) ? strdup(alg->valuestring) : NULL;
	cJSON_Delete(header);
	return out;
}

const char *token_verify(const struct token_keys *keys, const char *token, time_t now, struct verified_token *out)
{
	if(!token || strlen(token) > 8192) return "malformed";
	char *alg = header_alg(token);
	if(!alg) return "malformed";
	const char *key = NULL;
	jwt_alg_t expected = JWT_ALG_NONE;
	if(strcmp(alg, "HS256") == 0 && keys->hs_secret){
		key = keys->hs_secret; expected = JWT_ALG_HS256;
	}else if(strcmp(alg, "RS256") == 0 && keys->public_pem){
		key = keys->public_pem; expected = JWT_ALG_RS256;
	}else if(strcmp(alg, "ES256") == 0 && keys->public_pem){
		key = keys->public_pem; expected = JWT_ALG_ES256;
	}
	free(alg);
	if(!key) return "algorithm_not_allowed";

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
