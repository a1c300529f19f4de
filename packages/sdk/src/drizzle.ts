// "@tidings/sdk/drizzle": the Drizzle adapter (imports drizzle-orm).
export { fromDrizzle, type DrizzleLike } from "./executor/drizzleAdapter.ts";
