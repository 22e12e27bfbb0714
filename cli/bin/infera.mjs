#!/usr/bin/env node
// The `infera` command: TypeScript sources run through tsx, like every process of the platform.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
process.exitCode = await main(process.argv);
