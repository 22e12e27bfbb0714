/**
 * OpenTelemetry's GenAI semantic conventions as the gateway applies them: the operation
 * name of each endpoint, and the attributes a request's span carries. Content (prompts,
 * completions) is never among them.
 */
import type { EndpointKind } from "@infera/contracts";

/** `gen_ai.operation.name`: the conventions' values where they have one, else the endpoint's name. */
export const GENAI_OPERATION: Record<EndpointKind, string> = {
  chat: "chat",
  completion: "text_completion",
  embedding: "embeddings",
  image: "generate_content",
  rerank: "rerank",
  score: "score",
  tokenize: "tokenize",
  detokenize: "detokenize",
};
