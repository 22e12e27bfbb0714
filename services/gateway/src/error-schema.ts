/** The error every API answers with: OpenAI's error JSON (errors.ts builds it; its schema is OpenAI's `ErrorResponse`, openai-responses.json). */
import Type from "typebox";

/** The 4xx/5xx answers of a route, for its `response` schema. */
export const errorResponses = {
  "4xx": Type.Ref("ErrorResponse", { description: "Refused: OpenAI's error JSON; `param` names the field at fault." }),
  "5xx": Type.Ref("ErrorResponse", { description: "Could not be served now (retry after `Retry-After`), or failed." }),
};
