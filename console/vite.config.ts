import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Served by the gateway at /console/ (same origin as the API it calls). Everything is bundled:
// no CDN, no web font, no request to anyone but the gateway.
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: process.env.CONSOLE_OUT_DIR ?? "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  // `pnpm --filter @infera/console dev` against a local platform on :8080.
  server: { proxy: Object.fromEntries(["/deploy", "/admin", "/v1", "/models"].map((p) => [p, "http://127.0.0.1:8080"])) },
});
