/**
 * The message every system carries: an order event of about 230 bytes of JSON, the size of a
 * typical domain event. Only `orderId` varies, so every system stores the same bytes.
 */
export function payload(i: number): Record<string, unknown> {
  return {
    event: "order.created",
    orderId: `ord_${String(i).padStart(10, "0")}`,
    customerId: "cus_8f2d1c7a9b",
    currency: "EUR",
    amountCents: 12_990,
    items: [
      { sku: "SKU-1042", qty: 2, priceCents: 4_500 },
      { sku: "SKU-2210", qty: 1, priceCents: 3_990 },
    ],
    placedAt: "2025-01-01T12:00:00.000Z",
  };
}

/** The same payload as JSON text, for pgbench scripts (single quotes doubled for SQL). */
export function payloadSqlLiteral(): string {
  return `'${JSON.stringify(payload(0)).replaceAll("'", "''")}'`;
}

export const TOPIC = "orders.created";
