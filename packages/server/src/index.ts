export { loadConfig, ConfigError, type Config } from "./runtime/config.ts";
export { startService, type RunningService } from "./runtime/service.ts";
export { migrate } from "./store/migrate.ts";
export { createPool } from "./store/db.ts";
export { parseDuration, formatDuration } from "./domain/duration.ts";
export { compileRetryPolicy, afterFailure, DEFAULT_SCHEDULE, type RetryPolicy } from "./domain/retrySchedule.ts";
