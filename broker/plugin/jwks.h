/* The project's public signing keys, fetched from its JWKS (Supabase publishes them at
 * <SUPABASE_URL>/auth/v1/.well-known/jwks.json) and kept by kid as PEM, which libjwt reads.
 * Fetches block Mosquitto's single thread for at most the timeout, so they are rare: at start,
 * every refresh period, and for a kid the set does not hold at most once per refetch period. */
#ifndef JWKS_H
#define JWKS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jwks;

/* True for an http:// or https:// URL with a host; anything else would be refused by the fetch
 * much later, so it is refused at start instead. */
bool jwks_url_ok(const char *url);

/* Fetches the set once before returning (a failure is logged, and retried by jwks_tick). NULL
 * when memory or libcurl cannot be set up. */
struct jwks *jwks_new(const char *url, int64_t refresh_ms, int64_t refetch_ms, long timeout_ms, int64_t now_ms);
void jwks_free(struct jwks *j);

/* Fetches again when the set is due: refresh_ms after the last good fetch; after failures, on a
 * backoff (retry_gap in jwks.c). */
void jwks_tick(struct jwks *j, int64_t now_ms);

/* The PEM public key published under kid, if its algorithm is alg; else NULL and why (a short
 * reason for the log). A kid the set lacks fetches the set again, unless the last fetch was less
 * than refetch_ms ago. */
const char *jwks_key(struct jwks *j, const char *kid, const char *alg, int64_t now_ms, const char **why);

size_t jwks_count(const struct jwks *j);
#endif
