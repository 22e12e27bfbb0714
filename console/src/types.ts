/** The parts of the API's answers the console reads (the whole API is described at /openapi.json). */
export type { Deployment, DeploymentEvent, Page, Replica } from "@infera/contracts/api";

export interface Stats {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  avg_time: number;
  avg95_time: number;
  p99_time: number;
  avg_ttft: number;
  errors: number;
  cost_usd: number;
}

export interface Gpu {
  gpu: string;
  total: number | null;
  in_use: number;
  available: number | null;
}

export interface Engine {
  engine: string;
  name: string;
  description: string;
  default: boolean;
}

/** An operator's engine profile (GET /deploy/llm/profiles). */
export interface Profile {
  name: string;
  engine: string;
  description: string | null;
  gpu_types: string[];
  max_num_gpus: number;
  max_instances: number;
}

export interface ApiKey {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  scopes: string[];
  tier: string;
  created_at: number;
  revoked_at: number | null;
  secret?: string;
}

export interface Tenant {
  id: string;
  name: string;
}

export interface UsageRow {
  model?: string;
  day?: string;
  key_id?: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
}

export interface Usage {
  from: string;
  to: string;
  data: UsageRow[];
  total: { requests: number; prompt_tokens: number; completion_tokens: number; cost_usd: number };
}

export interface Model {
  id: string;
  owned_by: string;
}
