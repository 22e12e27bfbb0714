import type { Migration } from "kysely";
import * as init from "./2026-11-25T0800_init.ts";
import * as deploymentSecrets from "./2026-11-26T0900_deployment_secrets.ts";
import * as usageByDeployment from "./2026-12-01T1200_usage_by_deployment.ts";
import * as modalitiesTokenizer from "./2026-12-01T2100_modalities_tokenizer_usage_fields.ts";
import * as deployPolicy from "./2026-12-02T0000_deploy_policy.ts";
import * as keyLifetime from "./2026-12-02T0100_key_lifetime.ts";
import * as auditLog from "./2026-12-02T0200_audit_log.ts";
import * as storedResponses from "./2026-12-02T0300_stored_responses.ts";
import * as files from "./2026-12-02T0400_files.ts";
import * as batches from "./2026-12-02T0500_batches.ts";
import * as batchOutputExpiry from "./2026-12-02T0600_batch_output_expiry.ts";
import * as storedResponseItems from "./2026-12-02T0700_stored_response_items.ts";

/** Every migration, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  "2026-11-25T0800_init": init,
  "2026-11-26T0900_deployment_secrets": deploymentSecrets,
  "2026-12-01T1200_usage_by_deployment": usageByDeployment,
  "2026-12-01T2100_modalities_tokenizer_usage_fields": modalitiesTokenizer,
  "2026-12-02T0000_deploy_policy": deployPolicy,
  "2026-12-02T0100_key_lifetime": keyLifetime,
  "2026-12-02T0200_audit_log": auditLog,
  "2026-12-02T0300_stored_responses": storedResponses,
  "2026-12-02T0400_files": files,
  "2026-12-02T0500_batches": batches,
  "2026-12-02T0600_batch_output_expiry": batchOutputExpiry,
  "2026-12-02T0700_stored_response_items": storedResponseItems,
};
