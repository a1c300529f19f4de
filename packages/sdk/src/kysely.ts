// "@tidings/sdk/kysely": the Kysely adapter (imports kysely).
export { fromKysely, type KyselyLike } from "./executor/kyselyAdapter.ts";
