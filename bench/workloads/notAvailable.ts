/**
 * Thrown by a workload whose parts are not built yet (or not installed here): reported as "not
 * yet available", not as a failure. The suite grows with the product: a workload can land
 * before its feature.
 */
export class NotAvailable extends Error {}
