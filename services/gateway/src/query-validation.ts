/**
 * Query strings are strings: a route whose query has numbers (`limit`) validates it with this
 * compiler, which coerces them (the body routes keep Fastify's, which coerces nothing).
 */
import { Ajv } from "ajv";

const coercing = new Ajv({ coerceTypes: true, allErrors: true, useDefaults: false, removeAdditional: false, strict: false });

export const queryValidatorCompiler = ({ schema }: { schema: object }) => coercing.compile(schema);
