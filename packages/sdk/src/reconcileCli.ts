// "@tidings/sdk/reconcile-cli": the `tidings reconcile` command, loaded by the service's CLI.
export { runReconcileCli, RECONCILE_USAGE } from "./reconcile/reconcileCli.ts";
