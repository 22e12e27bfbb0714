/** The parts of the API's answers the console reads (the whole API is described at /openapi.json). */
export interface Deployment {
  deploy_id: string;
  model_name: string;
  version: string;
  task: string;
  status: string;
  fail_reason: string | null;
  created_at: string;
  updated_at: string;
  instances: { running: number; pending: number };
  config: {
    gpu: string;
    num_gpus: number;
    max_batch_size: number;
    engine: string;
    hf: { repo: string; revision: string | null; has_token: boolean } | null;
    container_image: string | null;
    extra_args: string[];
  };
  settings: { min_instances: number; max_instances: number };
}

export interface DeploymentEvent {
  id: string;
  from_status: string | null;
  to_status: string;
  reason: string | null;
  created_at: string;
}

export interface Page<T> {
  data: T[];
  last_id: string | null;
  has_more: boolean;
}

export interface Replica {
  replica_id: string;
  phase: string;
  ready: boolean;
  reason: string | null;
  node: string | null;
  gpu: string | null;
  num_gpus: number | null;
  since: string | null;
  last_heartbeat: string | null;
  load: { running: number; waiting: number; kv_cache_usage: number } | null;
  restarts: number;
}

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
