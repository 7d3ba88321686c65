/* Supabase access tokens as MQTT passwords: signature (HS256 with the project's JWT secret, or
 * RS256/ES256 with a public key), expiry and role checked here, without the database. */
#ifndef TOKEN_H
#define TOKEN_H
#include <stddef.h>
#include <time.h>

struct token_keys {
	const char *hs_secret;      /* HS256; NULL to refuse HS256 tokens */
	const char *public_pem;     /* RS256 / ES256; NULL to refuse them */
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
