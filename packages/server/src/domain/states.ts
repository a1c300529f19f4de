/** Mirrors of the Postgres enums in 0001_init.sql. */
export const MessageState = {
  prepared: "prepared",
  committed: "committed",
  rolledBack: "rolled_back",
} as const;
export type MessageState = (typeof MessageState)[keyof typeof MessageState];

export const DeliveryState = {
  pending: "pending",
  delivered: "delivered",
  dead: "dead",
} as const;
export type DeliveryState = (typeof DeliveryState)[keyof typeof DeliveryState];
