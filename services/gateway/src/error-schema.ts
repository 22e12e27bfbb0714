/** The error every API answers with: OpenAI's error JSON (errors.ts builds it), documented once. */
import Type from "typebox";

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      message: Type.String({ description: "What went wrong, for a person." }),
      type: Type.String({ description: "invalid_request_error, rate_limit_error or server_error." }),
      param: Type.Union([Type.String(), Type.Null()], { description: "The field or parameter at fault (`settings.min_instances`, `messages[0].role`)." }),
      code: Type.Union([Type.String(), Type.Null()]),
    }),
  },
  { $id: "ErrorResponse" },
);

/** The 4xx/5xx answers of a route, for its `response` schema. */
export const errorResponses = {
  "4xx": Type.Ref("ErrorResponse", { description: "Refused: OpenAI's error JSON; `param` names the field at fault." }),
  "5xx": Type.Ref("ErrorResponse", { description: "Could not be served now (retry after `Retry-After`), or failed." }),
};
