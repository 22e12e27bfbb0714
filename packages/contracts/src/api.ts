/**
 * The platform's HTTP answers that clients in this repository read (the `infera` CLI, the web
 * console): the deploy API's deployments, events, pages and replicas. The whole API, with every
 * field, is the OpenAPI document at /openapi.json.
 */
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
    profile?: string | null;
    extra_args: string[];
  };
  settings: { min_instances: number; max_instances: number };
}

export interface DeploymentEvent {
  id: string;
  deploy_id: string;
  from_status: string | null;
  to_status: string;
  reason: string | null;
  created_at: string;
}

export interface Page<T> {
  object: "list";
  data: T[];
  first_id: string | null;
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
  download_progress: number | null;
}

export interface Replicas {
  object: "list";
  deploy_id: string;
  status: string;
  runtime: string | null;
  data: Replica[];
}
