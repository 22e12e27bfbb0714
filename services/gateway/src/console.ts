/**
 * The web console at `/console/`: the static build of `console/` (Vite), from CONSOLE_DIR.
 * Same origin as the API it calls, and a Content-Security-Policy that lets the page load
 * and call nothing but this gateway. Hashed assets are cached for good; index.html never.
 */
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { PlatformError } from "@infera/core";
import { errorBody } from "./errors.ts";

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export async function registerConsole(app: FastifyInstance, dir: string | undefined): Promise<void> {
  // A page for people, not part of the API document.
  app.get("/console", { schema: { hide: true } }, async (_req, reply) => reply.redirect("/console/"));
  if (!dir) {
    app.get("/console/*", { schema: { hide: true } }, async (_req, reply) => {
      const e = new PlatformError("not_found", "The console is not served here: set CONSOLE_DIR to its build (local mode builds it on start).");
      return reply.code(404).send(errorBody(e, "console_not_built"));
    });
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: "/console/",
    index: ["index.html"],
    schemaHide: true,
    cacheControl: false,
    setHeaders(reply, path) {
      reply.header("content-security-policy", CONSOLE_CSP);
      reply.header("x-content-type-options", "nosniff");
      reply.header("referrer-policy", "no-referrer");
      reply.header("cache-control", path.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache");
    },
  });
}
