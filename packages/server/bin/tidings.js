#!/usr/bin/env node
// The `tidings` command (serve, migrate, relay): the TypeScript sources run through tsx.
// For `serve`, give Node the heap cap the service is measured with: node --max-old-space-size=128.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
