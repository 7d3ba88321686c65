// Every job the worker runs. Later features add theirs here.
import type { JobDefinition } from "../registry.ts";
import { analyticsRollup } from "./analytics.ts";
import { filesExtractText, filesProcess, filesThumbnail } from "./files.ts";
import { expireInvitations, purgeSoftDeleted } from "./maintenance.ts";
import { notificationsDigest, notificationsEmail } from "./notifications.ts";
import { tenantDelete, tenantExport } from "./tenant.ts";

export const JOBS: readonly JobDefinition[] = [expireInvitations, purgeSoftDeleted, tenantDelete, tenantExport, filesThumbnail, filesProcess, filesExtractText, notificationsEmail, notificationsDigest, analyticsRollup] as readonly JobDefinition[];

export function jobFor(queue: string): JobDefinition | undefined {
  return JOBS.find((j) => j.queue === queue);
}
