/*
 * safeupdate: an UPDATE or DELETE without a WHERE clause is refused, as pg-safeupdate refuses it
 * on hosted Supabase, which loads it in every session of `authenticator` (PostgREST's login). The
 * Data API then answers `21000 UPDATE requires a WHERE clause` to a PATCH or DELETE without a
 * filter, instead of changing every row RLS lets the caller touch. Debian ships no package of it,
 * so the local stack builds this one (dev/stack/postgres.ts) and the platform baseline loads it
 * for `authenticator` only (dev/platform/sql/90-safeupdate.sql).
 *
 * Same contract as pg-safeupdate 1.4: the check runs after parse analysis, so a WHERE clause of
 * any kind passes (`where true` included) and RLS, which the rewriter adds later, never counts as
 * one; data-modifying WITH queries are checked too (PostgREST wraps every write in one); the
 * `safeupdate.enabled` setting, on by default, can be turned off by a superuser.
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

static bool enabled = true;
static post_parse_analyze_hook_type previous_hook = NULL;

static void
require_where(Query *query)
{
	ListCell   *cell;

	/* Only the top level of a statement may hold data-modifying WITH queries. */
	if (query->hasModifyingCTE)
	{
		foreach(cell, query->cteList)
		{
			CommonTableExpr *cte = lfirst_node(CommonTableExpr, cell);

			if (IsA(cte->ctequery, Query))
				require_where((Query *) cte->ctequery);
		}
	}

	if (query->commandType != CMD_UPDATE && query->commandType != CMD_DELETE)
		return;
	if (query->jointree != NULL && query->jointree->quals != NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_CARDINALITY_VIOLATION),
			 errmsg("%s requires a WHERE clause", query->commandType == CMD_UPDATE ? "UPDATE" : "DELETE")));
}

static void
check_statement(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (enabled)
		require_where(query);
	if (previous_hook != NULL)
		previous_hook(pstate, query, jstate);
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("safeupdate.enabled",
							 "Refuses UPDATE and DELETE without a WHERE clause.",
							 NULL,
							 &enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("safeupdate");
	previous_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = check_statement;
}
