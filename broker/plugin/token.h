/* Supabase access tokens as MQTT passwords: signature (HS256 with the project's JWT secret, or
 * ES256/RS256 with the public key its header's kid names), expiry and role checked here, without
 * the database. */
#ifndef TOKEN_H
#define TOKEN_H
#include <stddef.h>
#include <time.h>

struct token_keys {
	const char *hs_secret;      /* HS256; NULL to refuse HS256 tokens */
	/* The PEM public key published under kid for alg (ES256 or RS256), or NULL and why; a NULL
	 * function refuses ES256 and RS256 tokens. */
	const char *(*public_key)(void *ctx, const char *kid, const char *alg, const char **why);
	void *ctx;
};

enum token_role { TOKEN_USER, TOKEN_SERVICE };

struct verified_token {
	enum token_role role;
	char sub[37];               /* the user's id (TOKEN_USER) */
	time_t exp;
};

/* NULL when the token is good, else why not (a short, stable reason for the log). */
const char *token_verify(const struct token_keys *keys, const char *token, time_t now, struct verified_token *out);

int is_uuid(const char *s);
#endif
