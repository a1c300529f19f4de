// "@tidings/sdk/relay-cli": the `tidings relay` command, loaded by the service's CLI.
export { runRelayCli, RELAY_USAGE } from "./outbox/relayCli.ts";
