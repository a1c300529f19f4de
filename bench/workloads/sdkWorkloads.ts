// The SDK workloads moved to transactional.ts and outboxRelay.ts; this re-export keeps older
// imports of NotAvailable working. New code imports it from ./notAvailable.ts.
export { NotAvailable } from "./notAvailable.ts";
