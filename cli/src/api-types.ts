/** The parts of the platform's answers `infera` reads (the OpenAPI document at /openapi.json has them all). */
export type { Deployment, DeploymentEvent, Page, Replicas } from "@infera/contracts/api";

export interface ApiKey {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  scopes: string[];
  tier: string;
  rpm: number | null;
  tpm: number | null;
  max_concurrent: number | null;
  created_at: number;
  revoked_at: number | null;
  secret?: string;
}

export interface Tenant {
  id: string;
  name: string;
  created_at: number;
}
