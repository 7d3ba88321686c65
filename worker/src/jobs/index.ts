// Every job the worker runs: one for each queue of the payload map (supabase/functions/_shared/jobs.ts),
// which a unit test holds them to. Later features add theirs to both.
import type { JobDefinition } from "../registry.ts";
import { analyticsRollup } from "./analytics.ts";
import { filesExtractText, filesPlace, filesProcess, filesSweep, filesThumbnail } from "./files.ts";
import { expireInvitations, purgeSoftDeleted } from "./maintenance.ts";
import { notificationsDigest, notificationsEmail } from "./notifications.ts";
import { tenantDelete, tenantExport } from "./tenant.ts";

export const JOBS: readonly JobDefinition[] = [
  expireInvitations,
  purgeSoftDeleted,
  tenantDelete,
  tenantExport,
  filesThumbnail,
  filesProcess,
  filesExtractText,
  filesPlace,
  filesSweep,
  notificationsEmail,
  notificationsDigest,
  analyticsRollup,
] as readonly JobDefinition[];
